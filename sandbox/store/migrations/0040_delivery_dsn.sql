-- DSN (RFC 3461) parameters a delivery carries from MAIL FROM and RCPT TO to the reports
-- the relay writes: JSON {"ret": .., "envid": .., "recipients": {rcpt: {"notify": [..],
-- "orcpt": ..}}}; NULL when the client gave none.
ALTER TABLE deliveries ADD COLUMN dsn TEXT;
