"""Union surveys: choice and free-text questions, named or anonymous, with results and response rates."""
