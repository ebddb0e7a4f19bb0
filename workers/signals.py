"""Signals other apps listen to, so the ledger never imports them."""

from django.dispatch import Signal

# Sent (inside the transaction) when an operation fails for a reason its own task could not record,
# e.g. the sweeper failing it past its deadline. kwargs: operation.
operation_failed = Signal()
