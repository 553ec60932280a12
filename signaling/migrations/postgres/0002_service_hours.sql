-- Structured service hours (weekly periods plus dated exceptions) of an extension point, as
-- JSON in protocol::hours::ServiceHours form. NULL: not set yet (the free text still shows).
ALTER TABLE extension_points ADD COLUMN hours_json TEXT;
