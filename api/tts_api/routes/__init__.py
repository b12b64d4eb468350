"""One module per resource of the router's API."""
