"""Front doors: the management REP API, the access model and the HTTP gateway."""
