"""Two-way: comments on union notices, members' questions on federation notices, and the officers' channel."""
