"""The API client behind the daily-work commands: contexts, HTTP with problem details, Server-Sent Events,
output. It speaks only HTTP to the api and imports no service package."""
