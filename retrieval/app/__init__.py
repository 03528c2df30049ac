"""The entry points: the `retr` command line and the web server with its static page."""
