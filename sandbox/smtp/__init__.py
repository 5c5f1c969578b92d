"""The sandbox's SMTP servers: submission, and one MX server per fake domain."""
