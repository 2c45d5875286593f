"""pykka actors: thin shells that receive, call the domain and tell the next actor."""
