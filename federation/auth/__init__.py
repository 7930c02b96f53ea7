"""Sign-in, sessions and bearer tokens, and the current subject of a request."""
