"""The payops error tree.

Every error a user can cause or meet is a :class:`PayopsError` whose message is one line
meant for a person; the CLI prints it and exits non-zero, never a traceback. Errors are
*transient* (worth retrying: a lock, a rate limit, the network) or *terminal* (bad input,
a rejected key), so retry logic asks the type, not the message.
"""

from __future__ import annotations


class PayopsError(Exception):
    """Something went wrong in payops."""

    transient = False
    exit_code = 1

    def __init__(self, message: str | None = None):
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class TransientError(PayopsError):
    """A temporary failure; trying again later may succeed."""

    transient = True


class TerminalError(PayopsError):
    """A failure that retrying will not fix."""


# --- configuration and input ---------------------------------------------------------
class ConfigError(TerminalError):
    """The configuration is missing or invalid."""


class InvalidInput(TerminalError):
    """The input is not valid."""

    exit_code = 2


class MoneyError(InvalidInput):
    """An amount is not valid for its currency."""


class NotFound(TerminalError):
    """No such object."""


# --- database ------------------------------------------------------------------------
class DatabaseError(TerminalError):
    """The database could not be used."""


class DatabaseBusy(TransientError):
    """The database is held by another process."""


class QueryRefused(InvalidInput):
    """The query was refused: analysts' queries run one read-only statement."""


class IngestError(InvalidInput):
    """A Stripe object could not be ingested."""


# --- Stripe --------------------------------------------------------------------------
class StripeError(TerminalError):
    """Stripe refused the request."""


class StripeAuthError(StripeError):
    """Stripe rejected the API key."""


class StripeUnavailable(TransientError):
    """Stripe could not be reached or kept answering with errors."""


class RateLimited(TransientError):
    """Stripe's rate limit was hit and retries ran out."""


class SignatureError(TerminalError):
    """The webhook signature is missing, invalid or too old."""


# --- refund workflow -----------------------------------------------------------------
class RefundError(TerminalError):
    """The refund request cannot be handled."""


class NotEligible(RefundError):
    """The payment is not eligible for this refund."""


class PermissionDenied(RefundError):
    """The user lacks the role needed for this action."""



# --- reports -------------------------------------------------------------------------
class ReportError(TerminalError):
    """A report could not be produced."""
