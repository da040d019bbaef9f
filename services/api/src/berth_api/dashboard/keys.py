"""Names the dashboard's modules share with the api's mount point, in a module that imports nothing, so that
``mount`` (loaded with the api) and the pages (loaded at the first ``/ui`` request) depend on it, not on
each other."""

API_APP = "berth.api_app"  # the scope key under which the dashboard finds the api's own app
