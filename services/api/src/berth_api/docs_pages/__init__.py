"""Pages a person reads about the api: the API reference (:mod:`.reference`) and the event catalogue
(:mod:`.events`). Imported on the first request for one of them (``entrypoints.routes_docs``)."""
