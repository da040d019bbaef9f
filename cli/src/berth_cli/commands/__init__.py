"""The daily-work commands of ``berth`` (login, projects, apps, deploy, logs, env, db, ...), each a thin
layer over ``berth_cli.client``."""
