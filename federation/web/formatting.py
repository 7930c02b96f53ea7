"""How the pages write dates, people's readings and rates."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from flask_babel import get_locale

from tenants.kana import kana_sort_key

# Japan keeps no daylight saving time, so a fixed offset is exact and needs no tz database on the server.
JST = timezone(timedelta(hours=9), "JST")
WEEKDAYS_JA = "月火水木金土日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# 50-on rows by the first kana of the reading (hiragana code points, as kana_sort_key folds katakana to them).
KANA_ROWS = (
    ("\u3041", "\u304a", "あ"), ("\u304b", "\u3054", "か"), ("\u3055", "\u305e", "さ"), ("\u305f", "\u3069", "た"),
    ("\u306a", "\u306e", "な"), ("\u306f", "\u307d", "は"), ("\u307e", "\u3082", "ま"), ("\u3083", "\u3088", "や"),
    ("\u3089", "\u308d", "ら"), ("\u308e", "\u3093", "わ"), ("\u3094", "\u3094", "あ"),
)


def _is_ja() -> bool:
    locale = get_locale()
    return locale is None or locale.language == "ja"


def to_jst(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(JST)


def format_datetime(value: datetime | None) -> str:
    """2026年11月24日(火) 18:30 in Japanese; Tue 24 Nov 2026 18:30 in English. Always Japan time."""
    if value is None:
        return ""
    local = to_jst(value)
    if _is_ja():
        return f"{local.year}年{local.month}月{local.day}日({WEEKDAYS_JA[local.weekday()]}) {local:%H:%M}"
    return f"{WEEKDAYS_EN[local.weekday()]} {local.day} {MONTHS_EN[local.month - 1]} {local.year} {local:%H:%M}"


def format_date(value: datetime | None) -> str:
    if value is None:
        return ""
    local = to_jst(value)
    if _is_ja():
        return f"{local.year}年{local.month}月{local.day}日({WEEKDAYS_JA[local.weekday()]})"
    return f"{WEEKDAYS_EN[local.weekday()]} {local.day} {MONTHS_EN[local.month - 1]} {local.year}"


def format_event(starts: datetime | None, ends: datetime | None) -> str:
    """An event's time; the end shows only its clock when it is on the same day."""
    if starts is None:
        return ""
    text = format_datetime(starts)
    if ends is not None:
        same_day = to_jst(starts).date() == to_jst(ends).date()
        text += "〜" + (f"{to_jst(ends):%H:%M}" if same_day else format_datetime(ends))
    return text


def iso_local(value: datetime | None) -> str:
    """The value an <input type="datetime-local"> shows: Japan time, minutes."""
    return to_jst(value).strftime("%Y-%m-%dT%H:%M") if value else ""


def parse_local(text: str | None) -> datetime | None:
    """What a person typed into a datetime-local field, read as Japan time; None when empty. ValueError if garbled."""
    if not text or not text.strip():
        return None
    return datetime.fromisoformat(text.strip()).replace(tzinfo=JST).astimezone(UTC)


def kana_row(kana: str | None) -> str:
    """The 50-on row a reading files under (あ, か, さ ...); anything else under ＃."""
    key = kana_sort_key(kana or "")
    if not key:
        return "＃"
    first = key[0]
    for low, high, row in KANA_ROWS:
        if low <= first <= high:
            return row
    return "＃"


def percent(part: int, whole: int) -> int:
    """A whole per cent, for bar widths. For text use `percent_text`."""
    return round(100 * part / whole) if whole else 0


def percent_text(part: int, whole: int) -> str:
    """A rate as people read it, rounded honestly: one reader of 300 is "<1%", not "0%"; 299 of 300 is ">99%",
    not "100%". Only none is 0% and only all is 100%."""
    if not whole or not part:
        return "0%"
    if part >= whole:
        return "100%"
    value = 100 * part / whole
    if value < 1:
        return "<1%"
    if value > 99:
        return ">99%"
    return f"{round(value)}%"


# The eras officers write in documents: (first day, name). Years before the first are shown in the Western form.
ERAS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"), (date(1926, 12, 25), "昭和"))


def era_year(day: date) -> str:
    for start, name in ERAS:
        if day >= start:
            n = day.year - start.year + 1
            return f"{name}{'元' if n == 1 else n}年"
    return f"{day.year}年"


def format_field_date(value: Any) -> str:
    """A form's date (YYYY-MM-DD) as it is written on union paperwork: 令和8年12月5日(土) (2026年); in English,
    Sat 5 Dec 2026. Anything that is not such a date is shown as it is."""
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if _is_ja():
        return f"{era_year(day)}{day.month}月{day.day}日({WEEKDAYS_JA[day.weekday()]})（{day.year}年）"
    return f"{WEEKDAYS_EN[day.weekday()]} {day.day} {MONTHS_EN[day.month - 1]} {day.year}"


def first_message(value: Any) -> str:
    """The first message of a validation error's nested lists and dicts, as one line for a page."""
    while isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, dict):
        return "; ".join(f"{k}: {first_message(v)}" for k, v in value.items())
    return str(value)
