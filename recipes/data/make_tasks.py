"""Generate the small task datasets used by the demo, the integration test and the benchmark.

    python recipes/data/make_tasks.py          # rewrites tone.jsonl and dates.jsonl (seeded: same bytes)

tone.jsonl  -- phrase -> its tone, one of six labels (joyful, sad, angry, fearful, grateful,
               surprised), answered with the label only. 480 training rows, then 90 held-out rows
               written from sentence patterns the training rows never use.
dates.jsonl -- a date written in one of eight styles -> the same date as YYYY-MM-DD. 400 training
               rows, then 80 held-out rows (dates not seen in training).

The first rows are the training split and the last rows the eval split, so Olive-style split
expressions select them: --train_split "train[:480]" --eval_split "train[480:]".
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20251123

# Prompts in SmolLM2's chat markup (ChatML), as Olive's guide writes Llama 3's; the trailing field is the answer.
TONE_TEMPLATE = (
    "<|im_start|>user\nWhat is the tone of this phrase? Answer with one word: joyful, sad, angry, fearful, "
    "grateful or surprised.\nPhrase: {phrase}<|im_end|>\n<|im_start|>assistant\n{tone}"
)
DATES_TEMPLATE = (
    "<|im_start|>user\nWrite this date in ISO format (YYYY-MM-DD): {date}<|im_end|>\n<|im_start|>assistant\n{iso}"
)
# name -> (file, training rows, template)
TASKS = {"tone": ("tone.jsonl", 480, TONE_TEMPLATE), "dates": ("dates.jsonl", 400, DATES_TEMPLATE)}

PEOPLE = [
    "my sister",
    "my boss",
    "the neighbor",
    "our coach",
    "my best friend",
    "the landlord",
    "my brother",
    "the new teacher",
    "grandma",
    "my roommate",
    "the manager",
    "our team lead",
    "my cousin",
    "the mechanic",
]
THINGS = [
    "the car",
    "my phone",
    "the report",
    "the package",
    "my laptop",
    "the cake",
    "the tickets",
    "my bike",
    "the garden",
    "the contract",
    "the photos",
    "my passport",
    "the keys",
    "the painting",
]
PLACES = [
    "at the station",
    "in the office",
    "at the park",
    "downstairs",
    "at the airport",
    "in the kitchen",
    "at school",
    "in the parking lot",
    "at the market",
    "on the bus",
]
TIMES = ["this morning", "last night", "today", "yesterday", "on Friday", "an hour ago", "this weekend",
         "after lunch"]  # fmt: skip

# tone -> sentence patterns; the last PATTERNS_HELD_OUT of each list only appear in the eval rows.
TONES: dict[str, list[str]] = {
    "joyful": [
        "We finally finished {thing} and I can't stop smiling!",
        "What a wonderful day {place}, everything went right!",
        "{Person} surprised me with {thing} and I'm over the moon.",
        "I'm so happy, {person} said yes {time}!",
        "Best news ever: {thing} arrived {time} and it's perfect!",
        "I've been dancing around the house since {time}.",
        "Life feels amazing right now, I could sing all day.",
        "{Person} and I laughed until we cried {place}.",
        "Hooray, we won and {person} is celebrating with us!",
        "Everything about the trip {time} was pure delight.",
        "My heart is bursting with happiness after the party {time}.",
        "I'm thrilled, absolutely thrilled, about {thing}!",
    ],
    "sad": [
        "I miss {person} so much since they moved away.",
        "It's been a lonely evening and I can't stop crying.",
        "{Person} didn't call {time} and I feel so empty.",
        "We lost {thing} and with it so many memories.",
        "Nothing feels the same {place} without {person}.",
        "I sat alone {place} {time}, feeling completely hopeless.",
        "My heart aches every time I look at {thing}.",
        "I wish things had turned out differently with {person}.",
        "The house is so quiet now, and I feel heartbroken.",
        "Tears came again when I found {thing} {time}.",
        "I feel so down, nothing seems worth doing anymore.",
        "Saying goodbye to {person} {time} broke my heart.",
    ],
    "angry": [
        "I can't believe {person} broke {thing} again!",
        "This is the third time {thing} arrived damaged. Unacceptable!",
        "{Person} lied to my face {time} and I'm furious.",
        "Stop ignoring my emails, I've waited two weeks for {thing}!",
        "Who parked {place} and blocked my car? Ridiculous!",
        "I'm sick and tired of {person} taking credit for my work.",
        "How dare they cancel {thing} without telling me!",
        "I'm so mad I could scream after what happened {place}.",
        "Fix {thing} now or I'm canceling my account!",
        "{Person} keeps slamming doors and I've had enough!",
        "This outrageous bill makes my blood boil.",
        "I'm livid that {person} ruined {thing} {time}.",
    ],
    "fearful": [
        "I heard footsteps behind me {place} and froze.",
        "What if {person} finds out about {thing}? I'm terrified.",
        "My hands are shaking, the test results come back {time}.",
        "There's a strange noise {place} and I'm scared to look.",
        "I can't sleep, I keep worrying that {thing} will go wrong.",
        "The storm is getting worse and I'm afraid the power will fail.",
        "Someone was following me {place} {time}, I'm still panicking.",
        "I'm dreading the meeting with {person}, what if I get fired?",
        "Please don't leave me alone here, I'm frightened.",
        "My heart is pounding, I think someone is outside the door.",
        "I'm anxious that {thing} won't arrive in time and I'll be in trouble.",
        "I'm so nervous about the interview {time}, I feel sick with fear.",
    ],
    "grateful": [
        "Thank you so much for helping me with {thing}.",
        "I really appreciate {person} staying late {time} to help.",
        "Thanks to {person}, {thing} is finally sorted out.",
        "I'm so thankful you drove me {place} {time}.",
        "Your kindness with {thing} meant the world to me.",
        "I owe {person} a huge thank you for their patience.",
        "Thank you for believing in me when nobody else did.",
        "Many thanks for returning {thing} so quickly.",
        "I can't thank {person} enough for the support {time}.",
        "We're deeply grateful for everything you did {place}.",
        "Thanks a million for fixing {thing}, you saved my day.",
        "I truly appreciate your help {time}, thank you.",
    ],
    "surprised": [
        "Wait, {person} is getting married? I had no idea!",
        "No way, {thing} was under the couch the whole time?",
        "I did not expect to see {person} {place} {time}!",
        "Whoa, they finished {thing} already? That was fast!",
        "You're kidding, {person} won the lottery?",
        "I can't believe {thing} actually worked on the first try!",
        "Really? The meeting {time} was canceled?",
        "Huh, I never knew {person} could play the piano!",
        "Wow, who left {thing} {place}? What a shock!",
        "Seriously, it snowed {time}? In May?",
        "Oh my, {person} is moving to Japan? Since when?",
        "That's unexpected, {thing} was free all along?",
    ],
}
PATTERNS_HELD_OUT = 3


def _fill(pattern: str, rng: random.Random) -> str:
    person = rng.choice(PEOPLE)
    text = pattern.format(
        person=person, Person=person[0].upper() + person[1:], thing=rng.choice(THINGS), place=rng.choice(PLACES),
        time=rng.choice(TIMES),
    )  # fmt: skip
    return text


def tone_rows(n_train: int = 480, n_eval: int = 90) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    labels = sorted(TONES)
    rows: list[dict[str, str]] = []
    for split, count, pick in (
        ("train", n_train, slice(0, -PATTERNS_HELD_OUT)),
        ("eval", n_eval, slice(-PATTERNS_HELD_OUT, None)),
    ):
        seen: set[str] = set()
        i = 0
        while len([r for r in rows if r["split"] == split]) < count:
            tone = labels[i % len(labels)]
            i += 1
            phrase = _fill(rng.choice(TONES[tone][pick]), rng)
            if phrase in seen:
                continue
            seen.add(phrase)
            rows.append({"phrase": phrase, "tone": tone, "split": split})
    train = [r for r in rows if r["split"] == "train"]
    rng.shuffle(train)
    evals = [r for r in rows if r["split"] == "eval"]
    rng.shuffle(evals)
    return train + evals


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _write_date(d: dt.date, style: int) -> str:
    month = MONTHS[d.month - 1]
    return [
        f"{month} {d.day}, {d.year}",
        f"{d.day} {month} {d.year}",
        f"{month[:3]} {d.day} {d.year}",
        f"the {_ordinal(d.day)} of {month}, {d.year}",
        f"{d.day:02d}/{d.month:02d}/{d.year} (day/month/year)",
        f"{d.month}/{d.day}/{d.year} (month/day/year)",
        f"{d.year}.{d.month:02d}.{d.day:02d}",
        f"{month} {_ordinal(d.day)} {d.year}",
    ][style]


def date_rows(n_train: int = 400, n_eval: int = 80) -> list[dict[str, str]]:
    rng = random.Random(SEED + 1)
    start, span = dt.date(1950, 1, 1), (dt.date(2049, 12, 31) - dt.date(1950, 1, 1)).days
    used: set[dt.date] = set()
    rows: list[dict[str, str]] = []
    for split, count in (("train", n_train), ("eval", n_eval)):
        for i in range(count):
            while True:
                d = start + dt.timedelta(days=rng.randrange(span))
                if d not in used:
                    used.add(d)
                    break
            rows.append({"date": _write_date(d, i % 8), "iso": d.isoformat(), "split": split})
    train, evals = rows[:n_train], rows[n_train:]
    rng.shuffle(train)
    rng.shuffle(evals)
    return train + evals


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    write_jsonl(HERE / "tone.jsonl", tone_rows())
    write_jsonl(HERE / "dates.jsonl", date_rows())
    print(f"wrote {HERE / 'tone.jsonl'} and {HERE / 'dates.jsonl'}")
