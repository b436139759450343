"""The web console at /ui/: server-rendered pages (Jinja2, htmx for partial updates) over
the same use cases, with the same caller, as the HTTP API. An adapter: no logic of its
own, no database access; what a page shows is what the identity's grants allow."""
