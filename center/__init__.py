"""The receiving side for night staff: open, verify, dedupe, record, acknowledge, show."""
