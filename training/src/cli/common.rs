//! Options shared by the training subcommands.

use std::path::PathBuf;

use memeguard_package::Device;

/// Where and how to run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// `cpu`, `cuda` or `cuda:N`. CUDA needs the GPU build of ONNX Runtime (`make onnxruntime-gpu`).
    #[arg(long, default_value = "cpu", env = "MEMEGUARD_DEVICE")]
    pub device: Device,
    /// ONNX Runtime intra-op threads (0: let ONNX Runtime choose).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Data-loading worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Which recipe to run on which data, and where the run goes.
#[derive(Debug, Clone, clap::Args)]
pub struct RecipeArgs {
    /// Recipe file (see training/recipes/).
    #[arg(long)]
    pub recipe: PathBuf,
    /// Data set directory (Hateful Memes layout).
    #[arg(long)]
    pub data: PathBuf,
    /// Run directory (default: runs/<recipe>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override recipe fields, e.g. --set train.epochs=3 --set train.lr=1e-3.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl RecipeArgs {
    /// The recipe with the `--set` overrides applied.
    pub fn load(&self) -> anyhow::Result<memeguard_training::recipe::Recipe> {
        let mut recipe = memeguard_training::recipe::Recipe::load(&self.recipe)?;
        apply_overrides(&mut recipe, &self.sets)?;
        Ok(recipe)
    }
}

/// `NAME=VALUE` overrides of recipe fields, e.g. `train.epochs=3`.
pub fn apply_overrides(recipe: &mut memeguard_training::recipe::Recipe, sets: &[String]) -> anyhow::Result<()> {
    if sets.is_empty() {
        return Ok(());
    }
    let mut value: toml::Value = toml::from_str(&recipe.to_toml())?;
    for set in sets {
        let (path, raw) =
            set.split_once('=').ok_or_else(|| anyhow::anyhow!("--set `{set}`: use KEY=VALUE, e.g. train.epochs=3"))?;
        let parsed: toml::Value = toml::from_str(&format!("v = {raw}"))
            .map(|t: toml::Table| t["v"].clone())
            .unwrap_or_else(|_| toml::Value::String(raw.to_string()));
        let mut slot = &mut value;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let table = slot.as_table_mut().ok_or_else(|| anyhow::anyhow!("--set `{set}`: `{part}` is not a table"))?;
            if i == parts.len() - 1 {
                table.insert(part.to_string(), parsed.clone());
                break;
            }
            slot = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        }
        // Checked after each override, so a typo (`train.epoch`) is named as typed.
        let text = toml::to_string(&value)?;
        *recipe = toml::from_str(&text).map_err(|e| anyhow::anyhow!("--set `{set}`: {}", e.message().trim()))?;
    }
    Ok(())
}

/// A fresh run directory under `runs/` unless one is given.
pub fn run_dir(given: Option<PathBuf>, recipe: &str) -> PathBuf {
    given.unwrap_or_else(|| {
        let stamp =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        PathBuf::from("runs").join(format!("{recipe}-{}", stamp.replace(':', "-")))
    })
}

/// The run directory a `--resume` checkpoint belongs to (its folder), so a resumed run
/// keeps writing its log and plots next to the earlier ones.
pub fn resume_dir(checkpoint: Option<&std::path::Path>) -> Option<PathBuf> {
    let dir = checkpoint?.parent()?;
    Some(if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() })
}
