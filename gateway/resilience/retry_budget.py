"""A retry budget: retries stay a bounded fraction of requests, so they never amplify an outage.

A token bucket in the style of Envoy's ``retry_budget`` and Finagle's ``RetryBudget``:
every request deposits ``percent / 100`` of a token, every retry withdraws one whole
token, and the bucket holds at most ``max(1, min_retries)`` tokens (it starts full, so a
quiet service may still retry a few times). Over any run of N requests the retries are
at most ``N * percent / 100 + min_retries``.

    >>> budget = RetryBudget(percent=20, min_retries=0)
    >>> for _ in range(10):
    ...     budget.deposit()
    >>> [budget.try_withdraw() for _ in range(3)]
    [True, False, False]
"""

from __future__ import annotations


class RetryBudget:
    def __init__(self, percent: float, min_retries: int) -> None:
        self.ratio = percent / 100
        self.capacity = float(max(1, min_retries))
        self.balance = float(min_retries)
        self.retries = 0
        self.refused = 0

    def deposit(self) -> None:
        """One request started: it earns ``percent / 100`` of a retry."""
        self.balance = min(self.capacity, self.balance + self.ratio)

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` (and counted) when it is spent."""
        if self.balance >= 1.0 - 1e-9:
            self.balance -= 1.0
            self.retries += 1
            return True
        self.refused += 1
        return False
