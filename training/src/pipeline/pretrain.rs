//! Self-supervised pretraining (CLIP, DINO, CASS, CASS-MM) on a data set's training
//! split (labels unused): the run directory keeps the checkpoint a finetune starts from,
//! the tokenizer, the loss log and its plot.

use super::{Dataset, PipelineError};
use crate::data::augment::{MultiCrop, Views};
use crate::data::{Loader, LoaderConfig, Sampling, Split};
use crate::objectives::Feeds;
use crate::recipe::{Method, Recipe};
use crate::run::feed::LoaderSource;
use crate::run::{RunDir, RunOptions, Trained, train};

/// The views each method trains on.
pub fn views_for(recipe: &Recipe, feeds: Feeds) -> Result<Views, PipelineError> {
    let size = recipe.image_size()? as u32;
    Ok(match (recipe.method, feeds) {
        (Method::Dino, Feeds::MultiCrop { local_crops }) => Views::dino(MultiCrop {
            global_size: size,
            local_size: recipe.model.local_size as u32,
            local_crops,
            ..MultiCrop::default()
        }),
        (Method::Cass | Method::CassMm, _) if recipe.data.augment => Views::cass(size),
        (Method::Clip, _) if recipe.data.augment => Views::clip(size),
        (Method::Finetune, _) if recipe.data.augment => Views::finetune(size),
        _ => Views::eval(size, super::finetune::RESIZE),
    })
}

/// Pretrains with `recipe` on the training split of `data`.
pub fn pretrain(
    recipe: &Recipe,
    data: &Dataset,
    run_dir: &mut RunDir,
    opts: &RunOptions,
    workers: usize,
) -> Result<Trained, PipelineError> {
    if recipe.method == Method::Finetune {
        return Err(PipelineError::Invalid(format!(
            "recipe `{}` is a finetune recipe: use `memeguard-train finetune`",
            recipe.name
        )));
    }
    let objective = recipe.objective(data.tokenizer.vocab_size(), recipe.train.seed)?;
    let memes = data.split(Split::Train)?;
    let views = views_for(recipe, objective.feeds)?;
    let tokenizer = match objective.feeds {
        Feeds::ImageText | Feeds::Labelled => Some(&data.tokenizer),
        _ => None,
    };
    let cfg = LoaderConfig {
        batch_size: recipe.train.batch_size,
        workers: workers.max(1),
        prefetch: workers.max(1) * 2,
        sampling: Sampling::Shuffle,
        // Contrastive losses need full batches of the same size.
        drop_last: true,
        seed: recipe.train.seed,
        max_text_len: recipe.model.max_length,
        ..Default::default()
    };
    let loader = Loader::new(memes, tokenizer, views, cfg)?;
    if loader.batches_per_epoch() == 0 {
        return Err(PipelineError::Invalid(format!(
            "the training split has fewer memes than one batch ({}); lower batch_size",
            recipe.train.batch_size
        )));
    }
    std::fs::write(run_dir.path.join("tokenizer.json"), data.tokenizer.to_json())
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    let mut source = LoaderSource { loader, feeds: objective.feeds };
    Ok(train(&objective, &mut source, &recipe.train, opts, Some(run_dir), None)?)
}
