"""The demo marketplace's fixed facts: prices, Stripe's fees, names, notes and how often things happen.

Only data lives here; :mod:`payops.demo.plan` draws from it and
:mod:`payops.demo.stripe_objects` shapes Stripe objects with it.
"""

from __future__ import annotations

API_VERSION = "2026-10-28.endive"
SESSIONS_PER_CUSTOMER_DAY = 0.08
PLATFORM_FEE_BPS = 1500  # the marketplace's own fee: Stripe's application_fee_amount on every charge
DAY = 86_400
HOUR = 3_600

# Volume by hour of day (UTC): tutoring happens after school and work.
HOURS = [0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.5, 0.6, 0.7, 0.8,
         0.9, 1.0, 1.2, 1.6, 2.0, 2.3, 2.4, 2.2, 1.8, 1.3, 0.9, 0.5]
HOUR_F = [w * 24 / sum(HOURS) for w in HOURS]
WEEKDAY_F = 7 / (5 + 2 * 0.55)  # weekends have 55% of a weekday's volume
DAY_F = [WEEKDAY_F] * 5 + [WEEKDAY_F * 0.55] * 2

# Session prices in minor units: duration -> the three tutor rate tiers.
DURATIONS = (30, 45, 60, 90)
DURATION_W = (0.2, 0.2, 0.45, 0.15)
PRICES = {
    "usd": {30: (2500, 3000, 3500), 45: (4000, 4500, 5500), 60: (5000, 6000, 7500), 90: (9000, 10500, 12000)},
    "eur": {30: (2500, 3000, 3500), 45: (4000, 4500, 5000), 60: (5000, 6000, 7000), 90: (8500, 10000, 11500)},
    "gbp": {30: (2500, 2500, 3000), 45: (3500, 4000, 4500), 60: (4500, 5500, 6500), 90: (7500, 9000, 10500)},
    "jpy": {30: (3000, 3500, 4000), 45: (4500, 5000, 6000), 60: (6000, 7000, 8000), 90: (9000, 10500, 12000)},
    # a three-decimal currency (fils): Stripe wants such amounts to end in 0
    "kwd": {30: (8000, 9500, 11000), 45: (12000, 14000, 16500), 60: (15000, 18000, 22000),
            90: (22000, 27000, 33000)},
}
# Stripe's card pricing: (basis points, fixed minor units), dispute fee.
STRIPE_FEE = {"usd": (290, 30), "eur": (150, 25), "gbp": (150, 20), "jpy": (360, 0), "kwd": (290, 100)}
DISPUTE_FEE = {"usd": 1500, "eur": 2000, "gbp": 2000, "jpy": 2000, "kwd": 5000}
COUNTRIES = {"usd": ("US",), "eur": ("DE", "FR", "NL", "ES", "IT"), "gbp": ("GB",), "jpy": ("JP",), "kwd": ("KW",)}
LOCALE = {"usd": "en-US", "eur": "de-DE", "gbp": "en-GB", "jpy": "ja-JP", "kwd": "ar-KW"}

# (failure_code, decline reason, failure_message, weight) as Stripe reports them.
DECLINES = (
    ("card_declined", "generic_decline", "Your card was declined.", 0.30),
    ("card_declined", "insufficient_funds", "Your card has insufficient funds.", 0.30),
    ("card_declined", "do_not_honor", "Your card was declined.", 0.10),
    ("expired_card", "expired_card", "Your card has expired.", 0.12),
    ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", 0.12),
    ("processing_error", "processing_error",
     "An error occurred while processing your card. Try again in a little bit.", 0.06),
)
FAIL_RATE = 0.045  # of first attempts; about half are retried successfully
BRANDS = (("visa", 0.55), ("mastercard", 0.30), ("amex", 0.10), ("discover", 0.05))

FIRST_NAMES = ("Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Mateo", "Chloe", "Ethan", "Zoe",
               "Leo", "Maya", "Omar", "Hana", "Yuki", "Sara", "Jonas", "Lena", "Ravi", "Priya", "Diego",
               "Ines", "Tom", "Clara", "Felix", "Nora", "Sam", "Aisha", "Ben", "Ella", "Kenji")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Muller", "Rossi", "Tanaka", "Nguyen", "Brown", "Martin",
              "Kowalski", "Silva", "Novak", "Okafor", "Dubois", "Jensen", "Patel", "Kim", "Lopez",
              "Schmidt", "Sato", "Wilson", "Moreau", "Costa", "Ali")
SUBJECTS = ("Math", "Physics", "Chemistry", "English", "Spanish", "Biology", "Piano", "Coding",
            "History", "SAT prep")

REQUESTERS = ("ana", "ben", "carla", "support-bot")
REVIEWERS = ("ana", "ben", "carla")
REQUEST_REASONS = (("requested_by_customer", 0.75), ("duplicate", 0.15), ("fraudulent", 0.10))
NOTES = {
    "requested_by_customer": (
        "Student says the tutor cancelled an hour before the session.",
        "Session cut short by a video-call outage; asking for a partial refund.",
        "Parent booked the wrong subject by mistake.",
        "Student was ill and cancelled the same morning.",
        "Tutor did not show up; student waited 20 minutes.",
        "Unhappy with the session quality, asks for a goodwill refund.",
    ),
    "duplicate": (
        "Booked the same slot twice from the mobile app.",
        "Charged twice for one session according to the bank statement.",
    ),
    "fraudulent": (
        "Cardholder says they never booked this session.",
        "Card reported stolen; bank asked us to refund.",
    ),
}
REJECT_NOTES = (
    "Session was held and completed; outside the refund policy.",
    "Cancellation was less than 2 hours before the session.",
    "No duplicate found: the two charges are for two different sessions.",
    "Already compensated with a free session.",
)
APPROVE_NOTES = (None, None, "Tutor confirmed the cancellation.", "Goodwill refund, first complaint.",
                 "Duplicate confirmed in the booking log.")
FAIL_MESSAGES = (
    "Stripe refused the refund: the card behind charge {charge} is closed (expired_or_canceled_card).",
    "Stripe could not be reached: connection timed out after 3 retries.",
    "Stripe refused the refund: charge {charge} has already been refunded in the Dashboard.",
)
DISPUTE_REASONS = (("fraudulent", 0.45), ("product_not_received", 0.25), ("duplicate", 0.10),
                   ("credit_not_processed", 0.10), ("general", 0.10))
NETWORK_REASON = {"fraudulent": "10.4", "product_not_received": "13.1", "duplicate": "12.6.1",
                  "credit_not_processed": "13.6", "general": "13.3"}

# Guaranteed refund requests: (status, min age days, max age days, large?). Every status and
# every PENDING priority (URGENT > 3 days, HIGH 1-3 days, LARGE) appears in every demo.
REQUEST_SPECS = (
    ("PENDING", 3.5, 9.5, False),
    ("PENDING", 1.2, 2.8, False),
    ("PENDING", 0.1, 0.9, True),
    ("PENDING", 4.0, 8.0, True),
    ("PENDING", 0.05, 0.9, False),
    ("APPROVED", 0.3, 2.0, False),
    ("APPROVED", 0.5, 3.0, True),
    ("REJECTED", 1.0, 8.0, False),
    ("PROCESSING", 0.1, 0.5, False),
    ("PROCESSED", 1.0, 9.0, False),
    ("PROCESSED", 2.0, 9.0, True),
    ("FAILED", 0.5, 6.0, False),
)
REQUEST_RATE = 0.03
