"""The "per_user" ingestion as a Beam pipeline, on whatever runner `beam_pipeline_args` name (DirectRunner by
default; Dataflow, Flink or Spark the same way): interaction files -> (user, item) pairs -> per-user split ->
sharded tf.Examples per split and the id vocabularies, the same split `hetcomp_tf.data.split.split_dataset` makes in
memory (tests/test_beam_ingestion.py compares them pair for pair).

Input files are read whole, each by one worker, so a file is the unit of parallelism and every error names its file
and line: CSV/TSV logs of `user,item[,rating][,timestamp]` shard freely (each file's first line tells its own layout,
a shard may be empty); a users.dat is one file, since its line number is the user id. The two vocabularies (sorted
ids, a previous dataset's ids first on a warm start) are built on one worker each, as TFT's vocabularies are.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.interaction_examples import SHARD_PREFIX, SPLITS, VOCABULARY_FILES, interaction_example, vocabulary_text
from hetcomp_tf.config import DataConfig
from hetcomp_tf.data.readers import CsvLayout, note_ratings_kept, parse_users_dat_line
from hetcomp_tf.data.user_split import TRAIN, split_user
from hetcomp_tf.errors import HetCompError


@dataclass(frozen=True)
class Source:
    """What to ingest: `files` in `fmt` ("citeulike": one users.dat, "csv"), or for `fmt` "pairs" the (user id,
    item id) `pairs` themselves (the built-in synthetic data)."""

    fmt: str
    files: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    where: str = ""  # how errors name the input: the pattern the user gave

    def __post_init__(self):
        if self.fmt == "citeulike" and len(self.files) != 1:
            raise HetCompError(
                f"{self.where}: a users.dat-format input is one file (its line number is the user "
                f"id), this matches {len(self.files)}"
            )


def file_pairs(path: str, fmt: str, min_rating: float | None):
    """Yields every (user id, item id) of one file that passes `min_rating`, reading it line by line."""
    layout = None
    rows = 0
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        for lineno, raw in enumerate(iter(f.readline, b""), start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise HetCompError(f"{path} line {lineno}: not UTF-8 text (byte {err.start})") from None
            if fmt == "citeulike":
                for item in parse_users_dat_line(line, path, lineno).tolist():
                    yield str(lineno - 1), str(item)
                continue
            layout = layout or CsvLayout.of(line, path, min_rating)
            row = layout.parse(next(csv.reader([line], delimiter=layout.delimiter), []), lineno, min_rating)
            if row is not None:
                rows += 1
                if row[2]:
                    yield row[0], row[1]
    if layout is not None and min_rating is None and layout.n_fields >= 3 and rows:
        note_ratings_kept(path, rows)


def read_pairs(pipeline: beam.Pipeline, source: Source, min_rating: float | None) -> beam.PCollection:
    """Distinct (user id, item id) pairs of `source`."""
    if source.fmt == "pairs":
        pairs = pipeline | "Pairs" >> beam.Create(source.pairs)
    else:
        pairs = (
            pipeline
            | "Files" >> beam.Create(source.files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles" >> beam.FlatMap(file_pairs, source.fmt, min_rating)
        )
    return pairs | "Distinct" >> beam.Distinct()


def require(pipeline: beam.Pipeline, checks: list[tuple[beam.PCollection, str]]) -> None:
    """Fails the pipeline with the message of the first empty PCollection of `checks` (each one empty whenever an
    earlier one is, so the message is the cause, whatever order the runner counts them in)."""
    sizes = [
        beam.pvalue.AsSingleton(pcoll | f"Count{k}" >> beam.combiners.Count.Globally())
        for k, (pcoll, _) in enumerate(checks)
    ]

    def check(_, *counts) -> None:
        for count, (_, message) in zip(counts, checks):
            if count == 0:
                raise HetCompError(message)

    _ = pipeline | "CheckSizes" >> beam.Create([None]) | "Check" >> beam.Map(check, *sizes)


def extended_vocabulary(ids, previous=()) -> list[str]:
    """`previous` (a warm start's ids, their indices kept) then the other `ids` sorted: index i is line i."""
    known = set(previous)
    return [*previous, *sorted(set(ids) - known)]


def split_rows(user_items, cfg: DataConfig):
    """(user, item, part) for one user's items (`user_split.split_user`)."""
    user, items = user_items
    return [(user, item, part) for item, part in split_user(cfg.seed, user, items, cfg.split_ratios)]


def held_out_seen_in_train(item_rows):
    """The held-out rows of an item, when some train row has it."""
    _, grouped = item_rows
    return grouped["held_out"] if grouped["in_train"] else []


def evaluated_rows(user_rows):
    """A user's kept held-out rows, when they still hold both valid and test items."""
    _, rows = user_rows
    rows = list(rows)
    return rows if {part for _, _, part in rows} >= {1, 2} else []


def build(
    pipeline: beam.Pipeline,
    source: Source,
    cfg: DataConfig,
    examples_dir: str,
    vocabulary_dir: str,
    previous_vocabularies: tuple = ((), ()),
    num_shards: int = 0,
) -> None:
    """Adds the ingestion to `pipeline`: examples in `examples_dir`/Split-<name>/ (`num_shards` gzipped TFRecord
    shards each, 0: as the runner likes), vocabularies in `vocabulary_dir`; `previous_vocabularies` (user ids, item
    ids) keep their indices (a warm start's `Dataset.extend_vocabularies`)."""
    pairs = read_pairs(pipeline, source, cfg.min_rating)
    active = (
        pairs
        | "ByUser" >> beam.GroupByKey()
        | "MinInteractions" >> beam.Filter(lambda kv: len(kv[1]) >= cfg.min_user_interactions)
    )
    rows = active | "Split" >> beam.FlatMap(split_rows, cfg)
    train = rows | "Train" >> beam.Filter(lambda row: row[2] == TRAIN)
    train_items = train | "TrainItems" >> beam.Map(lambda row: row[1]) | "DistinctItems" >> beam.Distinct()
    held_out = (
        rows | "HeldOut" >> beam.Filter(lambda row: row[2] != TRAIN) | "ByItem" >> beam.Map(lambda row: (row[1], row))
    )
    evaluated = (
        {"held_out": held_out, "in_train": train_items | "ItemKeys" >> beam.Map(lambda item: (item, True))}
        | "JoinTrainItems" >> beam.CoGroupByKey()
        | "SeenInTrain" >> beam.FlatMap(held_out_seen_in_train)
        | "HeldOutByUser" >> beam.Map(lambda row: (row[0], row))
        | "GroupHeldOut" >> beam.GroupByKey()
        | "ValidAndTest" >> beam.FlatMap(evaluated_rows)
    )
    kept = "" if cfg.min_rating is None else f" with rating >= min_rating={cfg.min_rating}"
    require(
        pipeline,
        [
            (pairs, f"{source.where}: no interaction{kept}"),
            (active, f"{source.where}: no user has >= {cfg.min_user_interactions} interactions"),
            (
                evaluated,
                f"{source.where}: no user kept valid and test items that also occur in train; "
                "the data is too small or too sparse",
            ),
        ],
    )

    previous_users, previous_items = previous_vocabularies
    vocabularies = {
        "user": active
        | "UserIds" >> beam.Keys()
        | "AllUsers" >> beam.combiners.ToList()
        | "UserVocabulary" >> beam.Map(extended_vocabulary, list(previous_users)),
        "item": train_items
        | "AllItems" >> beam.combiners.ToList()
        | "ItemVocabulary" >> beam.Map(extended_vocabulary, list(previous_items)),
    }
    index = {}
    for kind, vocabulary in vocabularies.items():
        _ = (
            vocabulary
            | f"{kind}VocabularyText" >> beam.Map(vocabulary_text)
            | f"Write{kind}Vocabulary"
            >> beam.io.WriteToText(
                os.path.join(vocabulary_dir, VOCABULARY_FILES[kind]), num_shards=1, shard_name_template=""
            )
        )
        index[kind] = beam.pvalue.AsSingleton(
            vocabulary | f"{kind}Index" >> beam.Map(lambda ids: {id_: i for i, id_ in enumerate(ids)})
        )

    def to_example(row, users, items) -> bytes:
        user, item, _ = row
        return interaction_example(users[user], items[item], user, item)

    parts = (
        (train, evaluated) | "Kept" >> beam.Flatten() | "BySplit" >> beam.Partition(lambda row, _: row[2], len(SPLITS))
    )
    for split, part in zip(SPLITS, parts):
        _ = (
            part
            | f"{split}Examples" >> beam.Map(to_example, index["user"], index["item"])
            | f"Write{split}"
            >> beam.io.WriteToTFRecord(
                os.path.join(examples_dir, f"Split-{split}", SHARD_PREFIX),
                file_name_suffix=".gz",
                compression_type=CompressionTypes.GZIP,
                num_shards=num_shards,
            )
        )


_BEAM_STEP = re.compile(r" \[while running '[^']*'\]")


def run_reporting_errors(pipeline: beam.Pipeline, build_fn, *args, **kwargs):
    """build_fn(pipeline, *args, **kwargs), run to completion; returns what build_fn returned. A HetCompError
    raised on a worker comes back as one line, without the step names Beam appends to it."""
    try:
        with pipeline:
            built = build_fn(pipeline, *args, **kwargs)
    except HetCompError as err:
        raise HetCompError(_BEAM_STEP.sub("", str(err)).splitlines()[0]) from None
    return built


def run(pipeline: beam.Pipeline, *args, **kwargs) -> None:
    """`build` and run to completion (`run_reporting_errors`)."""
    run_reporting_errors(pipeline, build, *args, **kwargs)
