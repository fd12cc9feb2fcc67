"""Wire protocol shared by the agent and the center: ids, topics, message schemas, envelope.

Nothing in this package does I/O: it turns bytes into verified objects and back.
"""
