"""Names that start with a surname read otherwise than its everyday reading (曾 zeng, 单 shan ...).

The name's pinyin, initials and weak-matching block now spell such a surname as a surname
(``central.identity.names.SURNAME_READINGS``). Here the stored names concerned lose their pinyin
and initials, so the ``name_pinyin`` job spells them again, and their customers' blocking keys
(``birthday|letter``) take the surname's letter, so that 曾刚 and Zeng Gang meet in one block.
The readings are copied as they were at this revision: a later change to the table needs its own
migration.

Revision ID: 0027_surname_readings
Revises: 0026_name_initials
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0027_surname_readings"
down_revision = "0026_name_initials"
branch_labels = None
depends_on = None

# Surname -> the first letter of its reading as a surname.
_LETTERS = {
    "曾": "z", "单": "s", "解": "x", "仇": "q", "区": "o", "查": "z", "朴": "p", "召": "s", "繁": "p",
    "员": "y", "翟": "z", "缪": "m", "祭": "z", "秘": "b", "种": "c", "阚": "k", "隗": "w", "句": "g",
    "藏": "z", "薄": "b", "都": "d", "洗": "x", "黑": "h", "能": "n", "折": "s",
}  # fmt: skip
# The names concerned: a listed surname first, but not the compound surname 单于 (chanyu).
_FIRST = ", ".join(f"'{surname}'" for surname in _LETTERS)
_NAMES = f"attribute = 'name' AND substr(search_key, 1, 1) IN ({_FIRST}) AND search_key NOT LIKE '单于%'"
_LETTER = " ".join(f"WHEN '{surname}' THEN '{letter}'" for surname, letter in _LETTERS.items())


def upgrade() -> None:
    """Clear the spellings of the names concerned and give their customers' blocks the surname's letter."""
    # Our own constants, no input: S608 does not apply.
    op.execute(f"UPDATE golden_attributes SET pinyin_key = NULL, initials_key = NULL WHERE {_NAMES}")  # noqa: S608
    letter = f"(SELECT CASE substr(g.search_key, 1, 1) {_LETTER} END FROM golden_attributes AS g"  # noqa: S608
    letter += " WHERE g.customer_id = match_keys.customer_id AND g.attribute = 'name')"
    concerned = f"SELECT customer_id FROM golden_attributes WHERE {_NAMES}"  # noqa: S608
    op.execute(
        f"UPDATE match_keys SET block = substr(block, 1, length(block) - 1) || {letter}"  # noqa: S608
        f" WHERE customer_id IN ({concerned})"
    )


def downgrade() -> None:
    """Not undone: the earlier code spells the names again when each customer's golden record is next refreshed."""
