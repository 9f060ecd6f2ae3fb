"""The dashboard served under ``/ui/``: sign-in by token, pages drawn in the browser from JSON
that the same engine functions as the APIs compute, and CSV downloads of every table."""
