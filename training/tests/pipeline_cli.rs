//! The training workflow end to end, as a user runs it: the real `memeguard-train` binary
//! on tiny synthetic memes in temporary folders. synth → finetune → export → eval; each
//! pretraining method → its checkpoint finetunes; Ctrl-C → `--resume` continues where the
//! run stopped; `refresh` from a server database with moderators' reviews, and the
//! databases it refuses (left untouched).
//!
//! The tiny recipes are shrunk with `--set` (32 px, batches of 16, few epochs) so the
//! whole file runs in about a minute in a debug build on two cores.

#[path = "common/decision_log.rs"]
mod decision_log;
#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};

use decision_log::{Decision, DecisionLog, fingerprint};
use memeguard_package::ModelPackage;
use train_cli::*;

/// `finetune` of the tiny multimodal recipe for `epochs`, exported to `export` as `demo`.
fn finetune_and_export(data: &Path, run: &Path, export: &Path, epochs: u64) -> Run {
    let mut args = command_args("finetune", "tiny-finetune-multimodal", data);
    args.extend([
        "--out".into(),
        arg(run),
        "--set".into(),
        format!("train.epochs={epochs}"),
        "--export".into(),
        arg(export),
        "--name".into(),
        "demo".into(),
    ]);
    args.extend(small());
    ok(&args)
}

/// The `k` of the `k/n` cell that ends the table row starting with `row`.
fn follows_cell(stdout: &str, row: &str) -> (usize, usize) {
    let line = stdout.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no row `{row}` in\n{stdout}"));
    let cell = line.trim_end_matches('|').rsplit('|').next().unwrap().trim();
    let (k, n) = cell.split_once('/').unwrap_or_else(|| panic!("`{cell}` in `{line}` is not k/n"));
    (k.parse().unwrap(), n.parse().unwrap())
}

#[test]
fn finetune_writes_its_run_directory_and_a_package_the_server_can_load() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 64, 32, 32);
    let run = tmp.path().join("run");
    let export = tmp.path().join("models/demo/1.0.0");
    let out = finetune_and_export(&data, &run, &export, 2);
    assert!(out.stdout.contains("seed 0: dev AUROC"), "{}", out.both());

    // The resolved config: the recipe with the overrides applied.
    let config: toml::Table = toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(config["train"]["epochs"].as_integer(), Some(2));
    assert_eq!(config["train"]["batch_size"].as_integer(), Some(16));
    assert_eq!(config["model"]["image"].as_str(), Some("resnet-tiny@32"));

    // Metrics as JSON and CSV: the run's report, one row per epoch, one per step.
    let metrics = json(&run.join("metrics.json"));
    assert_eq!(metrics["epochs_run"], 2);
    let best = metrics["best_epoch"].as_u64().unwrap();
    assert!((1..=2).contains(&best), "{metrics}");
    assert_eq!(metrics["dev"]["memes"], 32);
    assert_eq!(metrics["test"]["memes"], 32);
    let threshold = metrics["threshold"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&threshold));
    let dev_auroc = metrics["dev"]["auroc"].as_f64().unwrap();
    let per_epoch = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = per_epoch.lines().collect();
    assert_eq!(rows[0], "epoch,dev_auroc,dev_accuracy_at_0.5,best_epoch");
    assert_eq!(rows.len(), 3, "{per_epoch}");
    let best_row: Vec<&str> = rows[best as usize].split(',').collect();
    assert_eq!(best_row[0], best.to_string());
    // metrics.json's dev AUROC is the best epoch's, measured again on the exported model.
    assert!((best_row[1].parse::<f64>().unwrap() - dev_auroc).abs() < 1e-9, "{per_epoch} vs {metrics}");
    let log = step_log(&run);
    assert_eq!(
        log.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>(),
        "64 memes / 16 per batch, 2 epochs"
    );
    assert_eq!(log.iter().filter(|r| r.epoch == 1).count(), 4);
    assert!(log.iter().all(|r| r.loss.is_finite()));
    // Plots and the rest of the run.
    assert_svg(&run.join("loss.svg"));
    assert_svg(&run.join("roc.svg"));
    for file in ["model.onnx", "tokenizer.json", "data.json", "results.md", "checkpoint.safetensors"] {
        assert!(run.join(file).is_file(), "{file} missing from the run directory");
    }
    assert!(std::fs::read_to_string(run.join("results.md")).unwrap().contains("tiny-finetune-multimodal"));

    // The package: valid for the server, carrying metrics, threshold, data summary, recipe.
    let pkg = ModelPackage::open(&export).unwrap();
    assert!(out.stdout.contains(&format!("exported {} to {}", pkg.id(), export.display())), "{}", out.both());
    let m = &pkg.manifest;
    assert_eq!(m.name, "demo");
    assert_eq!(m.version, "1.0.0", "the --export folder names the version");
    assert!(!m.placeholder);
    assert_eq!(m.pretraining, "none");
    assert_eq!(m.image.size, SIZE);
    assert_eq!(m.text.max_length, 16);
    assert_eq!(m.threshold as f64, threshold as f32 as f64);
    assert_eq!(m.metrics["dev"]["auroc"].as_f64(), Some(dev_auroc));
    assert_eq!(m.metrics["best_epoch"].as_u64(), Some(best));
    assert!(m.metrics["test"]["accuracy"].is_number());
    assert_eq!(m.data["splits"]["train"]["memes"], 64);
    assert_eq!(m.data["splits"]["train"]["hateful"], 32);
    assert_eq!(m.data["splits"]["dev_seen"]["labelled"], 32);
    let packaged_recipe: toml::Table = toml::from_str(m.data["recipe"].as_str().unwrap()).unwrap();
    assert_eq!(packaged_recipe["train"]["epochs"].as_integer(), Some(2));
    assert_eq!(m.architecture.image_encoder, "resnet-tiny@32");
    assert!(m.architecture.parameters > 10_000);
    let dev = memes(&data, "dev_seen");
    let scores = package_scores(&pkg, &data, &dev);
    assert_eq!(scores.len(), dev.len());
    assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)), "{scores:?}");

    // `eval` scores the package the server's way; it agrees with the finetune's own test metrics.
    let roc = tmp.path().join("eval-roc.svg");
    let eval = ok(&[
        "eval".to_string(),
        "--package".into(),
        arg(&export),
        "--data".into(),
        arg(&data),
        "--split".into(),
        "test_seen".into(),
        "--roc".into(),
        arg(&roc),
    ]);
    let expected = format!(
        "{} on test_seen (32 memes): AUROC {:.4} accuracy {:.4}",
        pkg.id(),
        metrics["test"]["auroc"].as_f64().unwrap(),
        metrics["test"]["accuracy"].as_f64().unwrap()
    );
    assert!(eval.stdout.contains(&expected), "expected `{expected}` in\n{}", eval.both());
    assert_svg(&roc);

    // A version is never overwritten.
    let again = {
        let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
        args.extend([
            "--out".into(),
            arg(&tmp.path().join("run2")),
            "--set".into(),
            "train.epochs=1".into(),
            "--export".into(),
            arg(&export),
        ]);
        args.extend(small());
        fails(&args)
    };
    assert!(again.stderr.contains("already exists"), "{}", again.both());
}

#[test]
fn each_pretraining_method_lowers_its_loss_and_its_checkpoint_finetunes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 64, 16, 16);
    // (method, renames from its checkpoint's names to the classifier's)
    let methods: [(&str, &[&str]); 4] = [
        ("clip", &[]),
        ("dino", &["student.backbone.=image."]),
        ("cass", &["cnn.=image."]),
        ("cass-mm", &["cnn.image.=image.", "cnn.text.=text."]),
    ];
    for (method, renames) in methods {
        let run = tmp.path().join(format!("pretrain-{method}"));
        let mut args = command_args("pretrain", &format!("tiny-{method}"), &data);
        args.extend(["--out".into(), arg(&run), "--set".into(), "train.epochs=4".into()]);
        args.extend(small());
        let out = ok(&args);
        let log = step_log(&run);
        assert_eq!(log.len(), 16, "{method}: 4 epochs of 64/16 batches");
        let (first, last) = (epoch_mean(&log, 0), epoch_mean(&log, 3));
        assert!(last < first, "{method}: mean loss of the last epoch {last} is not below the first's {first}");
        let reported = format!(
            "pretrained `tiny-{method}` ({method}): loss {:.4} → {:.4} over 16 steps",
            log[0].loss, log[15].loss
        );
        assert!(out.stdout.contains(&reported), "{method}: expected `{reported}` in\n{}", out.both());
        // CASS and CASS-MM watch for collapse: the spread is logged at every step and reported.
        let watches = method.starts_with("cass");
        assert_eq!(log.iter().all(|r| r.spread.is_some()), watches, "{method}: embedding_spread column");
        assert_eq!(out.stdout.contains("embedding spread "), watches, "{method}:\n{}", out.both());
        for file in ["checkpoint.safetensors", "tokenizer.json", "config.toml"] {
            assert!(run.join(file).is_file(), "{method}: {file} missing");
        }
        assert_svg(&run.join("loss.svg"));

        // Its checkpoint finetunes (README's command: --init-from, --rename, --tokenizer).
        let ft = tmp.path().join(format!("finetune-{method}"));
        let export = tmp.path().join(format!("models/{method}/1"));
        let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
        args.extend(["--out".into(), arg(&ft), "--set".into(), "train.epochs=1".into()]);
        args.extend(["--init-from".into(), arg(&run.join("checkpoint.safetensors"))]);
        args.extend(["--tokenizer".into(), arg(&run.join("tokenizer.json")), "--export".into(), arg(&export)]);
        for r in renames {
            args.extend(["--rename".to_string(), r.to_string()]);
        }
        args.extend(small());
        ok(&args);
        let initialised = json(&ft.join("metrics.json"))["initialised"].as_u64().unwrap();
        assert!(initialised > 10, "{method}: only {initialised} values came from the checkpoint");
        let pkg = ModelPackage::open(&export).unwrap();
        assert_eq!(pkg.manifest.pretraining, method, "the manifest names the checkpoint's method");
    }

    // A checkpoint whose names match nothing is refused with the fix in the message.
    let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
    args.extend(["--out".into(), arg(&tmp.path().join("no-rename")), "--set".into(), "train.epochs=1".into()]);
    args.extend(["--init-from".into(), arg(&tmp.path().join("pretrain-cass-mm/checkpoint.safetensors"))]);
    args.extend(small());
    let refused = fails(&args);
    assert!(refused.stderr.contains("--rename"), "{}", refused.both());
}

/// Starts `args`, waits until `ready` exists, sends SIGINT (Ctrl-C), and returns the run.
#[cfg(unix)]
fn interrupt_when(args: &[String], ready: &Path) -> Run {
    use std::io::{Read, Seek};
    use std::time::{Duration, Instant};
    // Output goes to files, not pipes: nobody reads a pipe while we wait, and a full one would stall the run.
    let (mut stdout, mut stderr) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child =
        train().args(args).stdout(stdout.try_clone().unwrap()).stderr(stderr.try_clone().unwrap()).spawn().unwrap();
    let mut read_back = |success: bool| {
        let text = |f: &mut std::fs::File| {
            let mut s = String::new();
            f.rewind().unwrap();
            f.read_to_string(&mut s).unwrap();
            s
        };
        Run { success, stdout: text(&mut stdout), stderr: text(&mut stderr) }
    };
    let started = Instant::now();
    while !ready.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before {} appeared:\n{}",
                ready.display(),
                read_back(status.success()).both()
            );
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{} never appeared", ready.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted run exits with 128 + SIGINT");
    read_back(status.success())
}

/// The micro-step a checkpoint was written at.
#[cfg(unix)]
fn checkpoint_step(path: &Path) -> u64 {
    memeguard_training::runtime::Checkpoint::load(path).unwrap().micro_step
}

#[cfg(unix)]
#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_continues_where_the_run_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 64, 16, 16);
    let pretrain = |out: &Path| -> Vec<String> {
        let mut args = command_args("pretrain", "tiny-cass", &data);
        args.extend(["--out".into(), arg(out), "--set".into(), "train.epochs=8".into()]);
        args.extend(small());
        args
    };
    // The same run without interruption, for reference (one ORT thread: bit-reproducible).
    let full = tmp.path().join("full");
    ok(&pretrain(&full));
    let full_log = step_log(&full);
    assert_eq!(full_log.len(), 32);

    // Ctrl-C once the first epoch's checkpoint is written.
    let run = tmp.path().join("run");
    let stopped = interrupt_when(&pretrain(&run), &run.join("checkpoint.safetensors"));
    assert!(!stopped.success, "{}", stopped.both());
    assert!(
        stopped.stderr.contains("interrupted: a checkpoint was written to") && stopped.stderr.contains("--resume"),
        "{}",
        stopped.both()
    );
    let at = checkpoint_step(&run.join("checkpoint.safetensors"));
    assert!((4..32).contains(&at), "stopped at step {at}: after the first epoch, before the end");
    // The run directory shows everything up to the interruption.
    let stopped_log = step_log(&run);
    assert_eq!(stopped_log.last().map(|r| r.step), Some(at), "log.csv ends where the checkpoint was written");
    assert_svg(&run.join("loss.svg"));

    // Resume (no --out: the checkpoint's run directory) and finish.
    let mut args = pretrain(&run);
    let out_at = args.iter().position(|a| a == "--out").unwrap();
    args.drain(out_at..out_at + 2);
    args.extend(["--resume".into(), arg(&run.join("checkpoint.safetensors"))]);
    let resumed = ok(&args);
    assert!(resumed.stdout.contains(&format!("run directory: {}", run.display())), "{}", resumed.both());
    assert!(resumed.stdout.contains("over 32 steps"), "{}", resumed.both());
    let log = step_log(&run);
    assert_eq!(
        log.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=32).collect::<Vec<_>>(),
        "steps continue, none repeated"
    );
    assert_eq!(&log[..stopped_log.len()], &stopped_log[..], "the log before the interruption is kept");
    // ... and the resumed steps are the ones the uninterrupted run took, bit for bit.
    assert_eq!(log, full_log);
    assert_eq!(checkpoint_step(&run.join("checkpoint.safetensors")), 32);
}

#[cfg(unix)]
#[test]
fn an_interrupted_finetune_resumes_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 64, 32, 16);
    let finetune = |out: &Path| -> Vec<String> {
        let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
        args.extend([
            "--out".into(),
            arg(out),
            "--set".into(),
            "train.epochs=6".into(),
            "--set".into(),
            "data.patience=0".into(),
        ]);
        args.extend(small());
        args
    };
    let full = tmp.path().join("full");
    ok(&finetune(&full));

    let run = tmp.path().join("run");
    let stopped = interrupt_when(&finetune(&run), &run.join("metrics.csv"));
    assert!(stopped.stderr.contains("--resume"), "{}", stopped.both());
    let at = checkpoint_step(&run.join("checkpoint.safetensors"));
    assert!((4..24).contains(&at), "stopped at step {at}");

    let mut args = finetune(&run);
    args.extend(["--resume".into(), arg(&run.join("checkpoint.safetensors"))]);
    args.extend(["--export".into(), arg(&tmp.path().join("models/demo/2")), "--name".into(), "demo".into()]);
    ok(&args);
    assert_eq!(step_log(&run), step_log(&full), "the resumed finetune took the uninterrupted run's steps");
    // The best epoch is chosen over all epochs, those before the interruption included.
    let (a, b) = (json(&run.join("metrics.json")), json(&full.join("metrics.json")));
    for key in ["best_epoch", "epochs_run", "threshold", "dev", "test"] {
        assert_eq!(a[key], b[key], "metrics.json `{key}` differs from the uninterrupted run's");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(full.join("metrics.csv")).unwrap()
    );
    ModelPackage::open(&tmp.path().join("models/demo/2")).unwrap();
}

#[test]
fn refresh_learns_the_reviewed_verdicts_and_writes_a_new_version() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 64, 32, 16);
    let models = tmp.path().join("models");
    let current = models.join("demo/1.0.0");
    finetune_and_export(&data, &tmp.path().join("run"), &current, 2);
    let pkg = ModelPackage::open(&current).unwrap();
    let threshold = pkg.manifest.threshold;

    // Moderators overturned the verdicts the model got wrong on some memes.
    let dev = memes(&data, "dev_seen");
    let scores = package_scores(&pkg, &data, &dev);
    let wrong: Vec<(&MemeLine, f32)> =
        dev.iter().zip(scores.iter().copied()).filter(|(m, p)| (*p >= threshold) != (m.label == 1)).take(6).collect();
    assert!(wrong.len() >= 3, "the 2-epoch model should get several dev memes wrong: {scores:?}");
    let db = tmp.path().join("memeguard.db");
    let log = DecisionLog::create(&db);
    for (i, (meme, score)) in wrong.iter().enumerate() {
        let image = std::fs::read(data.join(&meme.img)).unwrap();
        let id = log.decide(&Decision {
            model: &pkg.id(),
            score: *score,
            threshold,
            text: &meme.text,
            image: &image,
            stored: true,
        });
        if i == 0 {
            // A first review that agreed with the model, then a second opinion: the latest counts.
            log.review(id, *score >= threshold, "looks right");
        }
        log.review(id, meme.label == 1, "overturned");
    }
    // Unreviewed decisions and reviewed ones without stored content are not training data.
    let other = &dev[dev.len() - 1];
    let image = std::fs::read(data.join(&other.img)).unwrap();
    log.decide(&Decision { model: &pkg.id(), score: 0.5, threshold, text: &other.text, image: &image, stored: true });
    let private = log.decide(&Decision {
        model: &pkg.id(),
        score: 0.9,
        threshold,
        text: &other.text,
        image: &image,
        stored: false,
    });
    log.review(private, false, "not stored");
    // The server keeps running (its connection stays open) while refresh reads.
    let before = fingerprint(&db);

    let mut args = vec!["refresh".to_string(), "--database".into(), arg(&db), "--package".into(), arg(&current)];
    args.extend([
        "--data".into(),
        arg(&data),
        "--models".into(),
        arg(&models),
        "--work-dir".into(),
        arg(&tmp.path().join("work")),
    ]);
    args.extend(
        ["--epochs", "3", "--review-weight", "32", "--threads", "1", "--workers", "1", "--quiet"].map(String::from),
    );
    let out = ok(&args);
    assert_eq!(fingerprint(&db), before, "refresh changed the database");
    log.close();

    let n = wrong.len();
    assert!(
        out.stdout.contains(&format!("reviews: {} reviewed decisions, {n} usable (1 without stored content)", n + 1)),
        "{}",
        out.both()
    );
    let (old_k, old_n) = follows_cell(&out.stdout, &format!("| current {} |", pkg.id()));
    let (new_k, new_n) = follows_cell(&out.stdout, "| refreshed |");
    assert_eq!((old_k, old_n, new_n), (0, n, n), "every review overturned the current model:\n{}", out.both());
    assert!(new_k > old_k, "the refreshed model follows no more reviews:\n{}", out.both());
    assert!(out.stdout.contains("new version written"), "refresh kept the old version:\n{}", out.both());

    // The new version: next to the old one, valid, and its verdicts follow the reviews.
    let line =
        out.stdout.lines().find_map(|l| l.strip_prefix("new package: ")).unwrap_or_else(|| panic!("{}", out.both()));
    let written = PathBuf::from(line);
    assert_eq!(written.parent(), Some(models.join("demo").as_path()));
    let new = ModelPackage::open(&written).unwrap();
    assert_eq!(new.manifest.name, "demo");
    assert_eq!(written.file_name().unwrap().to_str(), Some(new.manifest.version.as_str()));
    assert_ne!(new.id(), pkg.id());
    let reviewed: Vec<MemeLine> = wrong.iter().map(|(m, _)| (*m).clone()).collect();
    let new_scores = package_scores(&new, &data, &reviewed);
    let follows =
        reviewed.iter().zip(&new_scores).filter(|(m, p)| (**p >= new.manifest.threshold) == (m.label == 1)).count();
    assert_eq!(follows, new_k, "the server's scoring of the new package agrees with refresh's table");
    // The work folder keeps the finetune's run and the review images.
    assert!(tmp.path().join("work/run/metrics.json").is_file());
    assert_eq!(std::fs::read_dir(tmp.path().join("work/reviews")).unwrap().count(), n);
}

#[test]
fn refresh_refuses_databases_it_cannot_learn_from_and_leaves_them_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 0);
    let models = tmp.path().join("models");
    let current = models.join("demo/1.0.0");
    finetune_and_export(&data, &tmp.path().join("run"), &current, 1);
    let refresh = |db: &Path, package: &Path| -> Run {
        let before = fingerprint(db);
        let mut args = vec!["refresh".to_string(), "--database".into(), arg(db), "--package".into(), arg(package)];
        args.extend(["--data".into(), arg(&data), "--models".into(), arg(&models), "--epochs".into(), "1".into()]);
        args.extend(["--threads", "1", "--workers", "1", "--quiet"].map(String::from));
        let run = fails(&args);
        assert_eq!(fingerprint(db), before, "refresh changed {}", db.display());
        assert!(!run.stdout.contains("new package"), "{}", run.both());
        run
    };
    let image = std::fs::read(data.join(&memes(&data, "dev_seen")[0].img)).unwrap();
    let decision =
        Decision { model: "demo@1.0.0", score: 0.7, threshold: 0.5, text: "a caption", image: &image, stored: true };

    // The server's database, decisions but no reviews yet.
    let unreviewed = tmp.path().join("unreviewed.db");
    let log = DecisionLog::create(&unreviewed);
    log.decide(&decision);
    log.close();
    let run = refresh(&unreviewed, &current);
    assert!(run.stderr.contains(&format!("{} has no reviewed", unreviewed.display())), "{}", run.both());
    assert!(
        run.stderr.contains("no reviewed decisions with stored image and text (0 reviewed, 0 without content)"),
        "{}",
        run.both()
    );
    assert!(run.stderr.contains("nothing to learn from"), "{}", run.both());

    // Reviews only of decisions whose content was not stored.
    let private = tmp.path().join("private.db");
    let log = DecisionLog::create(&private);
    let id = log.decide(&Decision { stored: false, ..decision });
    log.review(id, false, "");
    log.close();
    let run = refresh(&private, &current);
    assert!(run.stderr.contains("(1 reviewed, 1 without content)"), "{}", run.both());

    // A SQLite database of something else.
    let foreign = tmp.path().join("foreign.db");
    DecisionLog::create_with_schema(
        &foreign,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hi');",
    )
    .close();
    let run = refresh(&foreign, &current);
    assert!(run.stderr.contains("is this memeguard's database?"), "{}", run.both());

    // A file that is not a database at all.
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a database, just some text that is long enough to have a header\n".repeat(10)).unwrap();
    let run = refresh(&text, &current);
    assert!(run.stderr.contains("not a database"), "{}", run.both());

    // A database that is not there (refresh never creates one).
    let missing = tmp.path().join("missing.db");
    let run = refresh(&missing, &current);
    assert!(run.stderr.contains("cannot open the decision log"), "{}", run.both());
    assert!(!missing.exists());

    // A package that memeguard-train did not export (no recipe to finetune again).
    let placeholder = tmp.path().join("placeholder");
    memeguard_package::write_placeholder_package(&placeholder).unwrap();
    let log = DecisionLog::create(&tmp.path().join("reviewed.db"));
    let id = log.decide(&decision);
    log.review(id, false, "");
    log.close();
    let run = refresh(&tmp.path().join("reviewed.db"), &placeholder);
    assert!(run.stderr.contains("carries no training recipe"), "{}", run.both());

    // Nothing was written into the models directory by any of them.
    let versions: Vec<_> = std::fs::read_dir(models.join("demo")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(versions, vec![std::ffi::OsString::from("1.0.0")]);
}
