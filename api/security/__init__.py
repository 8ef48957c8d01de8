"""Who may do what: bearer tokens, SMART scopes, rate limits, read access."""
