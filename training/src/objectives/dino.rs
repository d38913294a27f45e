//! DINO: a student and a teacher of the same architecture. The teacher is an EMA of
//! the student (momentum 0.996 → 1 on a cosine schedule, applied by the trainer after
//! each step) and sees only the two global crops; the student sees every crop. Teacher
//! outputs are centred (centre momentum 0.9) and sharpened (temperature fed per step:
//! 0.04, optionally warmed up to 0.07); student temperature 0.1. The loss is the
//! cross-entropy summed over all (teacher global view, different student view) pairs,
//! averaged over pairs and batch.

use memeguard_onnx::{Attr, DataType, dims};
use serde::{Deserialize, Serialize};

use super::{Feeds, LOSS, Objective};
use crate::graph_spec::Mode;
use crate::models::ModelError;
use crate::models::encoders::ImageEncoderConfig;
use crate::models::heads::{DinoHeadConfig, dino_head};
use crate::models::init::Init;
use crate::models::input::normalise_pixels;
use crate::models::net::{GraphOutput, Net};
use crate::optim::EmaPair;

/// Input: the two global crops of each sample, view-major: [2N, S, S, 3] uint8.
pub const GLOBAL_VIEWS: &str = "global_views";
/// Input: the local crops, view-major: [L·N, s, s, 3] uint8.
pub const LOCAL_VIEWS: &str = "local_views";
/// Input: the teacher temperature for this step (scalar float).
pub const TEACHER_TEMPERATURE: &str = "teacher_temperature";
/// Buffer: the running centre of teacher outputs [1, K].
pub const CENTER: &str = "dino.center";

/// DINO's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DinoConfig {
    pub backbone: ImageEncoderConfig,
    pub head: DinoHeadConfig,
    /// Number of local crops per sample (0 disables them).
    pub local_crops: usize,
    /// Side of the local crops (the global side comes from the backbone).
    pub local_size: usize,
    pub student_temperature: f32,
    pub center_momentum: f32,
}

impl DinoConfig {
    /// The reference hyper-parameters around `backbone` and `head`.
    pub fn reference(backbone: ImageEncoderConfig, head: DinoHeadConfig) -> Self {
        DinoConfig { backbone, head, local_crops: 8, local_size: 96, student_temperature: 0.1, center_momentum: 0.9 }
    }
}

/// Builds DINO's training graph. Parameters: `student.*` (trainable; `student.backbone.*`
/// is what a finetune takes, by renaming `student.backbone.` → `image.`) and `teacher.*`
/// (frozen, updated by EMA; it starts as a copy of the student).
pub fn build(cfg: &DinoConfig, seed: u64) -> Result<Objective, ModelError> {
    cfg.backbone.validate()?;
    let size = cfg.backbone.image_size() as i64;
    let k = cfg.head.out_dim as i64;
    let mut net = Net::new("dino", Mode::Train, seed);
    let global = net.b.input(GLOBAL_VIEWS, DataType::Uint8, &dims!["global_batch", size, size, 3]);
    let global = normalise_pixels(&mut net, &global);
    let temperature = net.b.input(TEACHER_TEMPERATURE, DataType::Float, &dims![]);

    let dim = cfg.backbone.feature_dim();
    let student_backbone = cfg.backbone.build(&mut net, "student.backbone", &global);
    let student_global = dino_head(&mut net, "student.head", &student_backbone, dim, &cfg.head);
    let mut student_views = vec![student_global];
    if cfg.local_crops > 0 {
        let ls = cfg.local_size as i64;
        let local = net.b.input(LOCAL_VIEWS, DataType::Uint8, &dims!["local_batch", ls, ls, 3]);
        let local = normalise_pixels(&mut net, &local);
        // The same student on the local crops: its parameters are reused (gradients sum
        // over both uses); a ViT resizes its position embeddings to the local size.
        net.set_weight_sharing(true);
        let lb = cfg.backbone.build_at_size(&mut net, "student.backbone", &local, cfg.local_size);
        student_views.push(dino_head(&mut net, "student.head", &lb, dim, &cfg.head));
        net.set_weight_sharing(false);
    }
    let teacher_backbone = cfg.backbone.build(&mut net, "teacher.backbone", &global);
    let teacher_out = dino_head(&mut net, "teacher.head", &teacher_backbone, dim, &cfg.head);
    net.set_trainable("teacher.", false);

    // Teacher: centre, sharpen, softmax. No gradient reaches it (frozen parameters).
    let center = net.buffer(CENTER, &[1, k], Init::Zeros);
    let centred = net.b.op("Sub", &[&teacher_out, &center], &[]);
    let sharpened = net.b.op("Div", &[&centred, &temperature], &[]);
    let teacher_probs = net.b.op("Softmax", &[&sharpened], &[("axis", Attr::Int(-1))]);
    // New centre = m·c + (1 − m)·mean over the batch of teacher outputs.
    let axes0 = net.const_i64s("dino_axes0", &[0]);
    let batch_mean = net.b.op("ReduceMean", &[&teacher_out, &axes0], &[("keepdims", Attr::Int(1))]);
    let m = net.scalar_f32("dino_center_m", cfg.center_momentum);
    let one_minus_m = net.scalar_f32("dino_center_1m", 1.0 - cfg.center_momentum);
    let kept = net.b.op("Mul", &[&center, &m], &[]);
    let added = net.b.op("Mul", &[&batch_mean, &one_minus_m], &[]);
    let new_center = net.b.op("Add", &[&kept, &added], &[]);
    net.set_buffer_update(&center, &new_center);

    // Student: log-softmax at the student temperature, all views stacked view-major.
    let refs: Vec<&str> = student_views.iter().map(String::as_str).collect();
    let student_all =
        if refs.len() == 1 { refs[0].to_string() } else { net.b.op("Concat", &refs, &[("axis", Attr::Int(0))]) };
    let inv_t = net.scalar_f32("dino_student_inv_t", 1.0 / cfg.student_temperature);
    let scaled = net.b.op("Mul", &[&student_all, &inv_t], &[]);
    let log_probs = net.b.op("LogSoftmax", &[&scaled], &[("axis", Attr::Int(-1))]);

    // Pairwise cross-entropies: T [2,N,K] → [N,2,K]; S [V,N,K] → [N,K,V]; T·S → [N,2,V].
    let views = 2 + cfg.local_crops as i64;
    let t_shape = net.const_i64s("dino_t_shape", &[2, -1, k]);
    let s_shape = net.const_i64s("dino_s_shape", &[views, -1, k]);
    let t = net.b.op("Reshape", &[&teacher_probs, &t_shape], &[]);
    let s = net.b.op("Reshape", &[&log_probs, &s_shape], &[]);
    let t = net.b.op("Transpose", &[&t], &[("perm", Attr::Ints(vec![1, 0, 2]))]);
    let s = net.b.op("Transpose", &[&s], &[("perm", Attr::Ints(vec![1, 2, 0]))]);
    let pair = net.b.op("MatMul", &[&t, &s], &[]);
    let pair = net.b.op("ReduceMean", &[&pair, &axes0], &[("keepdims", Attr::Int(0))]);
    // Skip the pairs where the student sees the teacher's own view.
    let mask: Vec<f32> = (0..2).flat_map(|q| (0..views).map(move |v| if q == v { 0.0 } else { 1.0 })).collect();
    let mask = net.const_f32("dino_pair_mask", &[2, views], mask);
    let kept_pairs = net.b.op("Mul", &[&pair, &mask], &[]);
    let total = net.b.op("ReduceSum", &[&kept_pairs], &[("keepdims", Attr::Int(0))]);
    let n_pairs = net.scalar_f32("dino_pairs", -1.0 / (2 * views - 2) as f32);
    let loss = net.b.op("Mul", &[&total, &n_pairs], &[]);

    let ema: Vec<EmaPair> = net
        .params()
        .iter()
        .filter(|p| p.trainable && p.name.starts_with("student."))
        .map(|p| {
            let teacher = format!("teacher.{}", &p.name["student.".len()..]);
            let dims = param_dims(&net, &p.name);
            EmaPair { teacher, student: p.name.clone(), dims }
        })
        .collect();
    let graph = net.finish(&[GraphOutput::f32(&loss, LOSS, dims![])]);
    Ok(Objective { graph, feeds: Feeds::MultiCrop { local_crops: cfg.local_crops }, ema, method: "dino" })
}

fn param_dims(net: &Net, name: &str) -> Vec<i64> {
    net.b
        .graph()
        .initializer
        .iter()
        .find(|t| t.name.as_deref() == Some(name))
        .map(|t| t.dims.clone())
        .unwrap_or_default()
}
