"""Secret ballots (投票): elections, rule changes and strike votes, secret from everyone and verifiable by anyone."""
