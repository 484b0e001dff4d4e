"""The `triage` command line: train, predict, export reviews, promote, serve; warnings and webhooks."""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Grievance triage: train and register models, score files, serve the API.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)
logger = logging.getLogger(__name__)


def _setup_logging(verbose: bool) -> None:
    # MLflow sets its loggers' level from this variable when it is first imported (after this runs).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "git", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> typer.Exit:
    # The message names files, columns and values from the user's data: shown as written, never as markup
    # (rich took "[id, dept, when]" for a tag and printed "found columns ;").
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # one line, however long
    return typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


def _print_load_report(report) -> None:
    summary = report.summary()
    err.print(f"read {summary['rows_read']} rows from {summary['files']} file(s): kept {summary['rows_kept']}, "
              f"merged {summary['duplicates_merged']} duplicates, rejected {summary['rows_rejected']}, "
              f"{summary['unparsed_dates']} unparsed dates", highlight=False)
    for r in report.rejected[:20]:
        err.print(f"  skipped {r.file}, row {r.row}: {r.reason}", highlight=False)
    if len(report.rejected) > 20:
        err.print(f"  … and {len(report.rejected) - 20} more skipped rows", highlight=False)
    for r in report.unparsed_dates[:5]:
        err.print(f"  kept without a date: {r.file}, row {r.row}: {r.reason}", highlight=False)


@app.command()
def train(
    data: Annotated[
        list[Path], typer.Option("--data", help="CSV, XLSX or Parquet file(s) of labeled cases; repeat for several.")
    ],
    config: Annotated[Path | None, typer.Option(help="Run configuration (YAML).")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV files, e.g. gb18030.")] = "utf-8",
    engine: Annotated[
        str, typer.Option(help="local: the risk model's LightGBM fits in this process; dask: on a Dask cluster.")
    ] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster of --workers processes).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="LocalCluster workers for --engine dask (default: cores, at most 4).")
    ] = None,
    risk_labels: Annotated[
        list[Path] | None,
        typer.Option("--risk-labels", help="Risk-label file(s) kept as ids (source, case_id, risk_level, criterion, "
                     "reason), joined with the case files under --shared-data; repeat for several."),
    ] = None,
    shared_data: Annotated[
        Path, typer.Option(help="Data directory the --risk-labels sources are relative to.")
    ] = Path("../shared/data"),
    compare_on: Annotated[
        Path | None,
        typer.Option("--compare-on", help="Labelled cases the new version must beat the champion on to take its "
                     "alias (held out of training); default registry.comparison_set of the config."),
    ] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register a model version (an experiment need not).")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the department router, evaluate it on held-out cases, log the run to MLflow and register it.

    The new version becomes the champion only if there is none yet, or if it beats the champion on the
    comparison set; otherwise it is the challenger (see `triage promote`). The output says which and why.
    """
    _setup_logging(verbose)
    if engine not in ("local", "dask"):
        raise _fail(f"unknown engine '{engine}'; use local or dask")
    if engine == "local" and (scheduler or workers):
        raise _fail("--scheduler and --workers need --engine dask")
    if engine == "dask" and scheduler and workers:
        raise _fail("--workers sizes a LocalCluster; with --scheduler the cluster has its own workers")
    from models.hotspot_settings import load_hotspot_config
    from training.comparison import load_comparison_set
    from training.config import ConfigError, load_config
    from training.loading import DataError, load_cases
    from training.train import TrainingError
    from training.train import train as run_training

    try:
        cfg = load_config(config)
        hotspot_cfg = load_hotspot_config()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    comparison_path = compare_on or (Path(cfg.registry.comparison_set) if cfg.registry.comparison_set else None)
    if comparison_path is not None and not register:
        raise _fail("--no-register trains an experiment only: it takes no comparison set")
    with contextlib.ExitStack() as stack:
        fitter, engine_params = None, {}
        if engine == "dask":  # before reading the data: an unreachable cluster should not cost a load
            fitter, engine_params = _dask_fitter(stack, scheduler, workers)
        try:
            loaded = load_cases(data, require_department=True, training=True, encoding=encoding,
                                keep_risk_only=True)
            _print_load_report(loaded.report)
            joined = _joined_risk_labels(risk_labels or [], shared_data)
            comparison = None if comparison_path is None else load_comparison_set(comparison_path, encoding=encoding)
            result = run_training(data, cfg, encoding=encoding, progress=_progress(), loaded=loaded,
                                  hotspot_config=hotspot_cfg, engine=engine, risk_fitter=fitter,
                                  engine_params=engine_params, risk_labels=joined, register=register,
                                  comparison=comparison)
        except (ConfigError, DataError, TrainingError) as exc:  # DaskTrainingError is a TrainingError
            raise _fail(str(exc)) from None

    m = result.evaluation.metrics
    title = (f"{result.model_name} v{result.model_version} → alias '{result.alias}'" if result.model_version
             else f"{result.model_name}: not registered")
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("held-out value", justify="right")
    for key in ("accuracy", "macro_f1", "coverage", "auto_routed_precision", "ece", "n_eval",
                "risk_red_recall", "risk_red_precision", "risk_macro_f1", "risk_n_eval"):
        if key in m:
            table.add_row(key, f"{int(m[key])}" if key.endswith("n_eval") else f"{m[key]:.4f}")
    console.print(table)
    per = result.evaluation.per_class
    dept = Table(title="per department (held-out)")
    for col in ("department", "precision", "recall", "f1", "support"):
        dept.add_column(col, justify="left" if col == "department" else "right")
    for name, row in per.iterrows():
        dept.add_row(str(name), f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}", str(int(row.support)))
    console.print(dept)
    _print_comparison(result)
    console.print(f"MLflow run: {result.link}", highlight=False, soft_wrap=True)


def _print_comparison(result) -> None:
    """The champion gate: the comparison (if one was made), then what happened to the aliases and why."""
    outcome = result.comparison
    if outcome is not None and outcome.candidate is not None and outcome.champion is not None:
        _print_scores(outcome, f"comparison set: {outcome.n_eval} cases held out from both models", "new")
    if result.held_out_for_comparison:
        console.print(f"{result.held_out_for_comparison} cases of the comparison set were held out of training",
                      highlight=False)
    console.print(f"aliases: {escape(result.alias_reason)}", highlight=False, soft_wrap=True)


def _print_scores(outcome, title: str, candidate_word: str) -> None:
    """The champion and the candidate side by side on the cases a promotion compared them on."""
    table = Table(title=f"{title} ({outcome.n_red} red)")
    table.add_column("metric")
    table.add_column(f"champion v{outcome.champion_version}", justify="right")
    table.add_column(f"{candidate_word} v{outcome.candidate_version}", justify="right")
    table.add_row("macro-F1 (department)", f"{outcome.champion.macro_f1:.4f}", f"{outcome.candidate.macro_f1:.4f}")
    table.add_row("red recall", _maybe(outcome.champion.red_recall), _maybe(outcome.candidate.red_recall))
    table.add_row("red precision", _maybe(outcome.champion.red_precision, "n/a (none called red)"),
                  _maybe(outcome.candidate.red_precision, "n/a (none called red)"))
    console.print(table)


def _joined_risk_labels(files: list[Path], shared_data: Path):
    """The annotated cases of ``files``, or None (with a warning) when their data directory is absent."""
    if not files:
        return None
    from training.risk_labels import SharedDataMissing, join_risk_labels

    try:
        joined = join_risk_labels(files, shared_data)
    except SharedDataMissing as exc:
        console.print(f"[yellow]warning:[/] risk labels skipped: {escape(str(exc))}", highlight=False)
        return None
    counts = joined["risk_level"].value_counts()
    console.print(f"risk labels: {len(joined)} annotated cases joined from {shared_data} "
                  f"({', '.join(f'{lvl} {int(counts.get(lvl, 0))}' for lvl in ('red', 'yellow', 'green'))})",
                  highlight=False)
    return joined


def _dask_fitter(stack: contextlib.ExitStack, scheduler: str | None, workers: int | None):
    """The risk model's fitter on the given scheduler (or a LocalCluster closed with `stack`), and the
    params that describe it; an unreachable scheduler is one error line."""
    from training.dask_predict import dask_client
    from training.dask_train import dask_booster_fitter
    from training.predict import default_workers

    if not logging.getLogger().isEnabledFor(logging.INFO):  # after the import: distributed sets its own levels
        logging.getLogger("distributed").setLevel(logging.WARNING)

    try:
        client = stack.enter_context(dask_client(scheduler, workers or default_workers()))
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise _fail(f"cannot reach the Dask scheduler '{scheduler}': {type(exc).__name__}: {exc}") from None
    n_workers = len(client.scheduler_info()["workers"])
    if n_workers == 0:
        raise _fail(f"the Dask scheduler '{scheduler}' has no workers")
    return dask_booster_fitter(client), {"dask_workers": n_workers, "dask_scheduler": scheduler or "LocalCluster"}


@app.command()
def predict(
    model: Annotated[
        str, typer.Option(help="models:/name@alias, models:/name/version, runs:/… or a local path.")
    ] = "models:/grievance-triage@champion",
    input: Annotated[
        str, typer.Option("--input", help="CSV, XLSX or Parquet file of cases; with --engine dask also a glob or URL.")
    ] = ...,
    output: Annotated[
        str, typer.Option(help="Where to write predictions (.csv or .parquet); with --engine dask a directory.")
    ] = ...,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV input.")] = "utf-8",
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes that score in parallel (default: cores, at most 4).")
    ] = None,
    hot_issues: Annotated[
        bool, typer.Option(help="Replay the file in time order to give each case its hot issue (burst).")
    ] = True,
    hotspot_config: Annotated[Path | None, typer.Option(help="Detector settings (YAML).")] = None,
    engine: Annotated[
        str, typer.Option(help="pandas: this machine's processes; dask: one partition per file on a Dask cluster.")
    ] = "pandas",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster of --workers processes).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score a file: one output row per case with department, confidence, needs_review and the top 3."""
    _setup_logging(verbose)
    if engine not in ("pandas", "dask"):
        raise _fail(f"unknown engine '{engine}'; use pandas or dask")
    if engine == "dask":
        _predict_dask(model, input, output, encoding, workers, hot_issues, hotspot_config, scheduler)
        return
    if scheduler:
        raise _fail("--scheduler needs --engine dask")
    input_path, output_path = Path(input), Path(output)
    from command.input_reader import InputReader
    from training.loading import DataError
    from training.output_files import check_output_path

    try:
        check_output_path(output_path)
    except DataError as exc:
        raise _fail(str(exc)) from None
    reader = InputReader(input_path, encoding)  # read while the imports and the model load run here
    try:
        from features.text import init_tokenizer
        from models.hotspot_settings import load_hotspot_config
        from models.long_lived import settle_long_lived
        from models.mlflow_model import load_model, needs_mlflow
        from models.tracking import configure_tracking
        from training.config import ConfigError
        from training.predict import default_workers, score_frame, write_predictions

        try:
            detector_config = load_hotspot_config(hotspot_config) if hot_issues else None
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        if needs_mlflow(model):
            configure_tracking()
        try:
            model_ref = load_model(model)
        except Exception as exc:
            raise _fail(f"could not load model '{model}': {exc}") from None
        init_tokenizer()
        # The model out of the collector's full passes (`models.long_lived`), while the reader still reads:
        # the hot-issue replay here and the forked scoring workers allocate as they go.
        settle_long_lived()
        try:
            loaded = reader.result()
        except DataError as exc:
            raise _fail(str(exc)) from None
    finally:
        reader.close()
    _print_load_report(loaded.report)
    cases = loaded.frame
    try:
        with _progress() as progress:
            task = progress.add_task("scoring", total=len(cases))
            scored = score_frame(model_ref.bundle, cases, lambda n: progress.advance(task, n),
                                 workers=workers or default_workers(), hot_issues=detector_config)
        write_predictions(scored, output_path)
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise _fail(f"scoring {input} with '{model}' failed: {type(exc).__name__}: {exc}") from None
    review = int(scored["needs_review"].sum()) if len(scored) else 0
    console.print(f"wrote {len(scored)} predictions to {output} ({review} need review)", highlight=False)


def _predict_dask(
    model: str,
    input: str,
    output: str,
    encoding: str,
    workers: int | None,
    hot_issues: bool,
    hotspot_config: Path | None,
    scheduler: str | None,
) -> None:
    """`predict --engine dask`: Parquet parts in the directory `output`; see training/dask_predict.py."""
    from models.hotspot_settings import load_hotspot_config
    from models.tracking import configure_tracking
    from training.config import ConfigError
    from training.dask_predict import ModelLoadError, dask_client, expand_inputs, predict_dask
    from training.loading import DataError
    from training.predict import default_workers

    if not logging.getLogger().isEnabledFor(logging.INFO):  # distributed sets its own levels on import
        logging.getLogger("distributed").setLevel(logging.WARNING)

    try:
        files = expand_inputs(input)
        detector_config = load_hotspot_config(hotspot_config) if hot_issues else None
    except (DataError, ConfigError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    configure_tracking()
    try:
        client_context = dask_client(scheduler, workers or default_workers())
        client = client_context.__enter__()
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise _fail(f"cannot reach the Dask scheduler '{scheduler}': {type(exc).__name__}: {exc}") from None
    try:
        result = predict_dask(client, model, files, output, hot_issues=detector_config, encoding=encoding)
    except (DataError, ModelLoadError) as exc:
        raise _fail(str(exc)) from None
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as exc:
        raise _fail(f"scoring {input} with '{model}' on Dask failed: {type(exc).__name__}: {exc}") from None
    finally:
        client_context.__exit__(None, None, None)
    for file, row, reason in result.skipped[:20]:
        err.print(f"  skipped {file}, row {row}: {reason}", highlight=False)
    if len(result.skipped) > 20:
        err.print(f"  … and {len(result.skipped) - 20} more skipped rows", highlight=False)
    console.print(f"wrote {result.rows} predictions in {result.partitions} Parquet part(s) to {output} "
                  f"({result.needs_review} need review, {len(result.skipped)} rows skipped)", highlight=False)


@app.command()
def hotspots(
    input: Annotated[Path, typer.Option("--input", help="CSV, XLSX or Parquet file of cases (any order).")] = ...,
    output: Annotated[Path, typer.Option(help="Where to write the alerts (JSON).")] = Path("alerts.json"),
    config: Annotated[
        Path | None, typer.Option(help="Detector settings (YAML); default models/defaults/hotspots.yaml.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV input.")] = "utf-8",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Replay a file in time order through the hot-issue detector; write each alert with when it was first raised."""
    _setup_logging(verbose)
    from models.hotspot_settings import load_hotspot_config
    from training.config import ConfigError
    from training.hotspots_cli import replay_file
    from training.loading import DataError

    try:
        alerts = replay_file(input, output, load_hotspot_config(config), encoding=encoding)
    except (ConfigError, DataError) as exc:
        raise _fail(str(exc)) from None
    red = sum(a.level == "red" for a in alerts)
    console.print(f"{len(alerts)} alerts ({red} red) written to {output}", highlight=False)
    for a in alerts[-10:]:
        line = (f"  {a.raised_at:%Y-%m-%d %H:%M} {a.level:6s} {a.place or '-'}  {a.cases} cases, "
                f"{a.reporters} reporters  [{', '.join(a.keywords[:5])}]")
        console.print(escape(line), highlight=False)  # places and keywords come from citizens' text


def _when(text: str | None, option: str, *, end_of_day: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD) or ISO datetime in UTC; with `end_of_day`, a bare date includes that whole day."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _fail(f"{option} {text!r}: not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+08:00]") from None
    if end_of_day and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _database_url(database_url: str | None) -> str:
    if database_url:
        return database_url
    from serving.settings import Settings

    return Settings().database_url


@app.command("export-reviews")
def export_reviews(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the reviewed cases (.csv or .parquet); default "
                     "var/exports/reviews-<UTC time>.csv (git-ignored). A path git would commit is refused."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Audit store URL; default TRIAGE_DATABASE_URL or var/triage.db.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only cases last reviewed on or after this date (UTC).")] = None,
    until: Annotated[
        str | None, typer.Option(help="Take reviews made before this date (a bare date includes that day).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write reviewed cases as labeled training data: the reviewer's department and level are the labels.

    One row per reviewed case (its latest review), with the text the reviewer saw; `triage train --data`
    takes the file beside other files, and its rows override theirs for the same case_id.
    """
    _setup_logging(verbose)
    from training.reviews_export import ExportError
    from training.reviews_export import export_reviews as run_export

    start, end = _when(since, "--since"), _when(until, "--until", end_of_day=True)
    from training.reviews_export import default_output_path

    out = out or default_output_path()
    try:
        frame = run_export(_database_url(database_url), out, since=start, until=end)
    except ExportError as exc:
        raise _fail(str(exc)) from None
    changed = int((frame["department"] != frame["model_department"]).sum())
    relevelled = int((frame["risk_level"].fillna("") != frame["model_level"].fillna("")).sum())
    console.print(f"wrote {len(frame)} reviewed cases to {out} ({changed} with the department changed, "
                  f"{relevelled} with the risk level changed by the reviewer)", highlight=False)


@app.command()
def promote(
    candidate: Annotated[str, typer.Option(help="Registered version of the candidate, e.g. 7.")],
    database_url: Annotated[
        str | None,
        typer.Option(help="Audit store to read reviews from; default TRIAGE_DATABASE_URL or var/triage.db."),
    ] = None,
    reviews: Annotated[
        Path | None, typer.Option(help="A file written by `triage export-reviews`, instead of the store.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only cases reviewed on or after this date (UTC).")] = None,
    min_cases: Annotated[
        int, typer.Option(min=1, help="Fewest held-out reviewed cases a comparison needs.")
    ] = 30,
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "grievance-triage",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Move the champion alias to CANDIDATE only if it is not worse on reviewed cases neither model trained on.

    Compares macro-F1 on the reviewers' departments, red precision and recall of their red level; logs the comparison to
    MLflow (experiment "promotion") either way. Exit code 0: promoted (or already champion); 1: refused;
    2: the comparison could not be made.
    """
    _setup_logging(verbose)
    from store import redact
    from training.loading import DataError
    from training.promote import PromotionError, reviews_from_file
    from training.promote import promote as run_promotion
    from training.reviews_export import ExportError

    if reviews is not None and database_url is not None:
        raise _fail("give either --reviews or --database-url, not both")
    start = _when(since, "--since")
    try:
        if reviews is not None:
            cases, source = reviews_from_file(reviews, since=start), str(reviews)
        else:
            url = _database_url(database_url)
            cases, source = _store_reviews(url, start), redact(url)
        result = run_promotion(candidate, cases, model_name=model_name, min_cases=min_cases, source=source,
                               since=start)
    except (PromotionError, DataError, ExportError) as exc:
        raise _fail(str(exc)) from None

    if result.candidate is not None and result.champion is not None:
        _print_scores(result, f"{result.n_eval} reviewed cases held out from both models", "candidate")
    for note in result.notes:
        console.print(f"  {note}", highlight=False)
    verdict = "[bold green]promoted[/]" if result.promoted else "[bold red]refused[/]"
    console.print(f"{verdict}: {result.reason}", highlight=False)
    console.print(f"MLflow run: {result.link}", highlight=False, soft_wrap=True)
    if not result.promoted:
        raise typer.Exit(code=1)


@app.command()
def retrain(
    history: Annotated[
        list[Path], typer.Option("--history", help="Labeled history file(s) to train on; repeat for several.")
    ],
    config: Annotated[Path | None, typer.Option(help="Run configuration (YAML); default the shipped one.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Audit store to export reviews from; default TRIAGE_DATABASE_URL.")
    ] = None,
    work_dir: Annotated[
        Path, typer.Option(help="Where the exported reviews and last-run.json go (private; outside git).")
    ] = Path("var/retrain"),
    gate_share: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of reviewed cases kept out of training for the gate.")
    ] = 0.3,
    min_cases: Annotated[int, typer.Option(min=1, help="Fewest gate cases a comparison needs.")] = 30,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Export reviews, retrain on history + reviews, and promote the new version only through the gate.

    A fixed share of reviewed cases (by a hash of the case id) never trains a model: the gate judges
    candidate and champion on them (macro-F1, red recall, red precision). The outcome is logged to MLflow
    (experiment "retraining") and shown on the dashboard. Exit code 0: promoted; 1: refused; 2: failed.
    """
    _setup_logging(verbose)
    from training.config import ConfigError, load_config
    from training.retrain import FAILED, PROMOTED
    from training.retrain import retrain as run_retrain

    try:
        train_config = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    outcome = run_retrain(history, _database_url(database_url), train_config, work_dir=work_dir,
                          gate_share=gate_share, min_cases=min_cases)
    colour = {"promoted": "green", "refused": "yellow"}.get(outcome.status, "red")
    console.print(f"[bold {colour}]{outcome.status}[/]: {outcome.reason}", highlight=False)
    console.print(f"candidate version {outcome.candidate_version or '-'}; champion {outcome.champion_before or '-'}"
                  f" -> {outcome.champion_after or '-'}; reviews {outcome.n_train_reviews} trained on, "
                  f"{outcome.n_gate_reviews} kept for the gate", highlight=False)
    console.print(f"MLflow run: {outcome.link}", highlight=False, soft_wrap=True)
    if outcome.status != PROMOTED:
        raise typer.Exit(code=2 if outcome.status == FAILED else 1)


def _store_reviews(url: str, since: datetime | None):
    """Reviews from the store; an empty store is fine when there is no champion to compare with."""
    from training.promote import reviews_from_store
    from training.reviews_export import ExportError

    try:
        return reviews_from_store(url, since=since)
    except ExportError as exc:
        if "holds no reviews" in str(exc):
            logger.info("%s", exc)
            return None
        raise


def _maybe(value: float | None, missing: str = "n/a (no red cases)") -> str:
    return missing if value is None else f"{value:.4f}"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[
        str | None, typer.Option(help="Model URI or path; default TRIAGE_MODEL_URI or the champion.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="uvicorn worker processes (metrics are summed over them; with "
                          "TRIAGE_HOTSPOT_SHARING=auto, several workers share the hot-issue state through the feed).")
    ] = 1,
) -> None:
    """Serve the triage API (and its docs at /docs)."""
    from serving.app import run

    run(host=host, port=port, model_uri=model, workers=workers)


warnings_app = typer.Typer(help="Warnings (预警单): supervision notices for overdue ones.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook push: deliver the outbox's events to TRIAGE_WEBHOOKS.", no_args_is_help=True)
app.add_typer(warnings_app, name="warnings")
app.add_typer(webhooks_app, name="webhooks")
DatabaseOption = Annotated[
    str | None, typer.Option(help="Audit store URL; default TRIAGE_DATABASE_URL or var/triage.db.")
]


def _warning_desk(database_url: str | None):
    """The store (migrated) and the warning desk the service would open, from TRIAGE_* settings."""
    from features.districts import GazetteerError
    from models.config_file import ConfigError
    from serving.services import open_store
    from serving.settings import Settings
    from serving.warning_desk import WarningDesk

    settings = Settings(database_url=_database_url(database_url))
    store = open_store(settings)
    try:
        return settings, store, WarningDesk.open(store, settings.warning_policy, settings.district_gazetteer)
    except (ConfigError, GazetteerError) as exc:
        store.dispose()
        raise _fail(str(exc)) from None


@warnings_app.command("sweep")
def warnings_sweep(
    database_url: DatabaseOption = None, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False
) -> None:
    """Issue warnings missed at intake, then raise a supervision notice (督办单) for each deadline passed.

    Idempotent: a deadline already supervised is not escalated again, so cron may run it as often as it
    likes (the service also runs it every TRIAGE_WARNING_SWEEP_SECONDS)."""
    _setup_logging(verbose)
    _, store, desk = _warning_desk(database_url)
    with store:
        missing = desk.issue_missing()
        escalated = desk.book.sweep_overdue()
        overdue = desk.book.summary().overdue
    console.print(f"issued {missing} missed warning(s); {len(escalated)} supervision notice(s) raised; "
                  f"{overdue} open warning(s) overdue", highlight=False, soft_wrap=True)
    for record in escalated:
        console.print(f"  {record.number} id={record.id} {record.department} escalation {record.escalation_level}",
                      highlight=False, soft_wrap=True)


@webhooks_app.command("deliver")
def webhooks_deliver(
    database_url: DatabaseOption = None,
    rounds: Annotated[int, typer.Option(min=1, help="At most this many rounds (each up to 20 events).")] = 1000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Post the due outbox events to the subscribers until none is due (or `--rounds`), with the service's
    retries and back-off; safe beside a running service (events are claimed, never sent twice at once)."""
    _setup_logging(verbose)
    from serving.webhooks import WebhookConfigError, deliverer_from_settings

    settings, store, desk = _warning_desk(database_url)
    with store:
        try:
            deliverer = deliverer_from_settings(desk.outbox, settings)
        except WebhookConfigError as exc:
            raise _fail(str(exc)) from None
        if deliverer is None:
            raise _fail("no webhook subscribers: set TRIAGE_WEBHOOKS=name=url[,name2=url2] and TRIAGE_WEBHOOK_SECRET")
        delivered = retrying = dead = 0
        try:
            for _ in range(rounds):
                done = deliverer.deliver_due()
                delivered, retrying, dead = delivered + done.delivered, retrying + done.retrying, dead + done.dead
                if done.claimed == 0:
                    break
        finally:
            deliverer.close()
        counts = desk.outbox.counts()
    console.print(f"delivered {delivered}, failed and retrying later {retrying}, dead {dead}; outbox now: "
                  f"{counts['pending']} pending, {counts['delivered']} delivered, {counts['dead']} dead",
                  highlight=False, soft_wrap=True)


REPORT_SUFFIXES = (".html", ".pdf")


@app.command("report")
def report(
    out: Annotated[str, typer.Option("--out", help="Where to write the report: FILE.html (one self-contained "
                                     "file) or FILE.pdf (A4, printed by Chromium; TRIAGE_CHROMIUM names it). "
                                     "{date} in the name is replaced by the last day covered.")],
    period: Annotated[
        str, typer.Option(help="day (调度日报), week (形势周报: 7 days) or month (月报: 30 days).")
    ] = "week",
    date: Annotated[str, typer.Option(help="The last day covered: YYYY-MM-DD, today or yesterday (in the "
                                       "warning policy's time zone).")] = "today",
    database_url: DatabaseOption = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds Chromium may take to print the PDF.")] = 90.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write a situation report: cases by level, department and district against the previous period, open
    and overdue warnings, the period's hot issues, where and in which fields risk concentrates, with charts."""
    _setup_logging(verbose)
    from serving.reports.build import build_report
    from serving.reports.pdf import PdfError, html_to_pdf
    from serving.reports.period import PeriodError, parse_period
    from serving.reports.render import render_document

    target = Path(out)
    suffix = target.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise _fail(f"--out {out!r}: the file name must end in .html or .pdf")
    if not target.parent.is_dir():
        raise _fail(f"--out {out!r}: folder {str(target.parent)!r} does not exist")
    try:
        parse_period(period)
    except PeriodError as exc:
        raise _fail(f"--{exc}") from None
    settings, store, desk = _warning_desk(database_url)
    with store:
        zone, now = desk.policy.zone, datetime.now(UTC)
        relative = {"today": 0, "yesterday": 1}.get(date.strip().lower())
        day = (now.astimezone(zone) - timedelta(days=relative)).date() if relative is not None else date
        try:
            built = build_report(desk, period, day, now=now)
        except PeriodError as exc:
            raise _fail(f"--{exc}") from None
        html = render_document(built)
    target = Path(out.replace("{date}", built.window.day.isoformat()))
    if suffix == ".pdf":
        try:
            target.write_bytes(html_to_pdf(html, chromium=settings.chromium, timeout_s=timeout))
        except PdfError as exc:
            raise _fail(str(exc)) from None
    else:
        target.write_text(html, encoding="utf-8")
    cases = built.figures.cases
    console.print(f"{built.title}（{built.window.label}）written to {target}: {cases.total} case(s), "
                  f"{built.figures.warnings.total} warning(s) issued, {built.figures.backlog.overdue} overdue, "
                  f"{len(built.figures.alerts)} hot issue(s)", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()
