"""The asynchronous plane: the operation ledger and dispatch (central side), and the host agent."""
