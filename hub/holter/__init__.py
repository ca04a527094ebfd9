"""Long-term (Holter) ECG analysis service: API, jobs, streaming analysis, reports, webhooks.

See docs/holter-api.md."""
