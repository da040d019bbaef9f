"""The web dashboard under ``/ui/``: server-rendered Jinja2 pages with htmx, reading and writing through the
REST API in-process with the session's token. Nothing here is imported until the first ``/ui`` request
(``berth_api.dashboard.mount``), so the api's idle memory does not carry it."""
