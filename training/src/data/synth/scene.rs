//! Scenes: a background, distractor shapes and one subject (the image concept), drawn
//! as filled polygons at twice the target size and downsampled (cheap antialiasing).
//!
//! Only the subject depends on the image concept; background, distractors, noise and
//! caption style are drawn independently of it, so they carry no label information.

use image::{Rgb, RgbImage};
use imageproc::drawing::draw_polygon_mut;
use imageproc::point::Point;
use rand::Rng;

use super::difficulty::Knobs;
use crate::data::augment::{Interpolation, resize};
use crate::data::seed::DataRng;

/// Supersampling factor of the scene before downsampling.
const SUPERSAMPLE: u32 = 2;

/// Renders the scene (no caption, no noise) for `subject` at `size`×`size`.
pub fn draw_scene(subject: usize, size: u32, knobs: &Knobs, rng: &mut DataRng) -> RgbImage {
    let big = size * SUPERSAMPLE;
    let mut canvas = background(big, knobs, rng);
    let distractors = rng.random_range(knobs.distractors.0..=knobs.distractors.1);
    for _ in 0..distractors {
        draw_distractor(&mut canvas, rng);
    }
    let s = big as f32;
    let half = rng.random_range(knobs.subject_scale.0..=knobs.subject_scale.1) * s / 2.0;
    let (cx, cy) = if knobs.centered {
        (s / 2.0, s / 2.0)
    } else {
        (rng.random_range(half..=s - half), rng.random_range(half..=s - half))
    };
    let angle = if knobs.rotate { rng.random_range(-0.35f32..0.35) } else { 0.0 };
    let mirror = rng.random_bool(0.5);
    let pen = Pen { cx, cy, half, cos: angle.cos(), sin: angle.sin(), mirror };
    draw_subject(&mut canvas, subject, &pen, rng);
    resize(&canvas, size, size, Interpolation::Bilinear)
}

/// Adds zero-mean noise of standard deviation `sigma` (Box-Muller) to every channel.
pub fn add_noise(img: &mut RgbImage, sigma: f32, rng: &mut DataRng) {
    if sigma <= 0.0 {
        return;
    }
    for v in img.iter_mut() {
        let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
        let n = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos() * sigma;
        *v = (*v as f32 + n).round().clamp(0.0, 255.0) as u8;
    }
}

/// Maps the subject's local square [-1, 1]² to canvas pixels (scale, rotation, mirror, move).
struct Pen {
    cx: f32,
    cy: f32,
    half: f32,
    cos: f32,
    sin: f32,
    mirror: bool,
}

impl Pen {
    fn map(&self, (x, y): (f32, f32)) -> Point<i32> {
        let x = if self.mirror { -x } else { x };
        let (rx, ry) = (x * self.cos - y * self.sin, x * self.sin + y * self.cos);
        Point::new((self.cx + rx * self.half).round() as i32, (self.cy + ry * self.half).round() as i32)
    }

    fn polygon(&self, canvas: &mut RgbImage, points: &[(f32, f32)], color: Rgb<u8>) {
        fill(canvas, points.iter().map(|&p| self.map(p)).collect(), color);
    }

    fn ellipse(&self, canvas: &mut RgbImage, center: (f32, f32), rx: f32, ry: f32, color: Rgb<u8>) {
        self.polygon(canvas, &ellipse_points(center, rx, ry, 28), color);
    }

    fn rect(&self, canvas: &mut RgbImage, x0: f32, y0: f32, x1: f32, y1: f32, color: Rgb<u8>) {
        self.polygon(canvas, &[(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color);
    }
}

/// Fills a polygon, skipping degenerate ones (imageproc needs distinct end points).
fn fill(canvas: &mut RgbImage, mut points: Vec<Point<i32>>, color: Rgb<u8>) {
    points.dedup();
    while points.len() > 1 && points.first() == points.last() {
        points.pop();
    }
    if points.len() >= 3 {
        draw_polygon_mut(canvas, &points, color);
    }
}

fn ellipse_points((cx, cy): (f32, f32), rx: f32, ry: f32, n: usize) -> Vec<(f32, f32)> {
    (0..n)
        .map(|i| {
            let a = std::f32::consts::TAU * i as f32 / n as f32;
            (cx + rx * a.cos(), cy + ry * a.sin())
        })
        .collect()
}

/// A colour near `base` (each channel moved by up to `spread`).
fn jitter(base: [u8; 3], spread: i32, rng: &mut DataRng) -> Rgb<u8> {
    Rgb(base.map(|c| (c as i32 + rng.random_range(-spread..=spread)).clamp(0, 255) as u8))
}

fn pick<'a, T>(items: &'a [T], rng: &mut DataRng) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn random_colour(rng: &mut DataRng) -> Rgb<u8> {
    Rgb([rng.random(), rng.random(), rng.random()])
}

fn background(size: u32, knobs: &Knobs, rng: &mut DataRng) -> RgbImage {
    let top = random_colour(rng);
    let bottom = if knobs.gradient { random_colour(rng) } else { top };
    let mut img = RgbImage::from_fn(size, size, |_, y| {
        let t = y as f32 / (size - 1).max(1) as f32;
        Rgb([0, 1, 2].map(|c| (top[c] as f32 * (1.0 - t) + bottom[c] as f32 * t) as u8))
    });
    if knobs.texture {
        // Diagonal stripes of a random colour and period, blended at 25%.
        let stripe = random_colour(rng);
        let period = rng.random_range(8..24) as u32 * SUPERSAMPLE;
        for (x, y, p) in img.enumerate_pixels_mut() {
            if (x + y) % period < period / 2 {
                for c in 0..3 {
                    p[c] = ((p[c] as u16 * 3 + stripe[c] as u16) / 4) as u8;
                }
            }
        }
    }
    img
}

/// A shape that belongs to no concept: cloud, blob, square, triangle or bar.
fn draw_distractor(canvas: &mut RgbImage, rng: &mut DataRng) {
    let s = canvas.width() as f32;
    let half = rng.random_range(0.04..0.12) * s;
    let pen =
        Pen { cx: rng.random_range(0.0..s), cy: rng.random_range(0.0..s), half, cos: 1.0, sin: 0.0, mirror: false };
    let colour = random_colour(rng);
    match rng.random_range(0..5) {
        0 => {
            let white = jitter([240, 240, 245], 10, rng);
            for dx in [-0.6, 0.0, 0.6] {
                pen.ellipse(canvas, (dx, 0.0), 0.55, 0.4, white);
            }
        }
        1 => pen.ellipse(canvas, (0.0, 0.0), 1.0, rng.random_range(0.3..1.0), colour),
        2 => pen.rect(canvas, -1.0, -1.0, 1.0, 1.0, colour),
        3 => pen.polygon(canvas, &[(-1.0, 1.0), (1.0, 1.0), (0.0, -1.0)], colour),
        _ => pen.rect(canvas, -1.0, -0.15, 1.0, 0.15, colour),
    }
}

fn draw_subject(canvas: &mut RgbImage, subject: usize, pen: &Pen, rng: &mut DataRng) {
    match subject {
        0 => sun(canvas, pen, rng),
        1 => tree(canvas, pen, rng),
        2 => house(canvas, pen, rng),
        3 => car(canvas, pen, rng),
        4 => fish(canvas, pen, rng),
        _ => flower(canvas, pen, rng),
    }
}

fn sun(canvas: &mut RgbImage, pen: &Pen, rng: &mut DataRng) {
    let colour = jitter(*pick(&[[255, 210, 0], [255, 170, 20], [250, 230, 60]], rng), 15, rng);
    let rays = rng.random_range(8..=12);
    for i in 0..rays {
        let a = std::f32::consts::TAU * i as f32 / rays as f32;
        let (w, r0, r1) = (0.12, 0.62, 0.98);
        let p = |r: f32, da: f32| (r * (a + da).cos(), r * (a + da).sin());
        pen.polygon(canvas, &[p(r0, -w), p(r1, 0.0), p(r0, w)], colour);
    }
    pen.ellipse(canvas, (0.0, 0.0), 0.55, 0.55, colour);
}

fn tree(canvas: &mut RgbImage, pen: &Pen, rng: &mut DataRng) {
    let trunk = jitter([110, 70, 35], 15, rng);
    let leaves = jitter(*pick(&[[40, 140, 50], [20, 110, 40], [90, 170, 60]], rng), 20, rng);
    pen.rect(canvas, -0.12, 0.15, 0.12, 1.0, trunk);
    if rng.random_bool(0.5) {
        for (x, y, r) in [(-0.35, -0.15, 0.45), (0.35, -0.15, 0.45), (0.0, -0.5, 0.5)] {
            pen.ellipse(canvas, (x, y), r, r, leaves);
        }
    } else {
        for (y0, w) in [(0.35, 0.8), (0.0, 0.62), (-0.35, 0.45)] {
            pen.polygon(canvas, &[(-w, y0), (w, y0), (0.0, y0 - 0.65)], leaves);
        }
    }
}

fn house(canvas: &mut RgbImage, pen: &Pen, rng: &mut DataRng) {
    let wall = jitter(*pick(&[[180, 70, 50], [230, 210, 170], [120, 150, 200]], rng), 15, rng);
    let roof = jitter([90, 40, 30], 20, rng);
    pen.rect(canvas, -0.7, -0.1, 0.7, 0.9, wall);
    pen.polygon(canvas, &[(-0.88, -0.1), (0.0, -0.85), (0.88, -0.1)], roof);
    pen.rect(canvas, -0.15, 0.4, 0.15, 0.9, jitter([70, 45, 30], 10, rng));
    let glass = jitter([170, 210, 240], 10, rng);
    pen.rect(canvas, -0.55, 0.1, -0.3, 0.35, glass);
    pen.rect(canvas, 0.3, 0.1, 0.55, 0.35, glass);
}

fn car(canvas: &mut RgbImage, pen: &Pen, rng: &mut DataRng) {
    let body = jitter(*pick(&[[200, 30, 30], [30, 80, 200], [240, 240, 240], [30, 30, 30]], rng), 20, rng);
    pen.polygon(canvas, &[(-0.5, 0.0), (-0.3, -0.4), (0.35, -0.4), (0.6, 0.0)], body);
    pen.polygon(
        canvas,
        &[(-0.4, -0.02), (-0.25, -0.32), (0.3, -0.32), (0.48, -0.02)],
        jitter([160, 200, 230], 10, rng),
    );
    pen.rect(canvas, -0.95, 0.0, 0.95, 0.45, body);
    for x in [-0.55, 0.55] {
        pen.ellipse(canvas, (x, 0.48), 0.22, 0.22, Rgb([20, 20, 20]));
        pen.ellipse(canvas, (x, 0.48), 0.09, 0.09, Rgb([160, 160, 160]));
    }
}

fn fish(canvas: &mut RgbImage, pen: &Pen, rng: &mut DataRng) {
    let colour = jitter(*pick(&[[255, 120, 0], [40, 120, 220], [60, 180, 120]], rng), 20, rng);
    pen.polygon(canvas, &[(0.45, 0.0), (0.95, -0.45), (0.95, 0.45)], colour);
    pen.ellipse(canvas, (-0.1, 0.0), 0.65, 0.38, colour);
    pen.ellipse(canvas, (-0.45, -0.08), 0.1, 0.1, Rgb([250, 250, 250]));
    pen.ellipse(canvas, (-0.47, -0.08), 0.05, 0.05, Rgb([10, 10, 10]));
}

fn flower(canvas: &mut RgbImage, pen: &Pen, rng: &mut DataRng) {
    let stem = jitter([50, 140, 50], 15, rng);
    let petal = jitter(*pick(&[[240, 90, 160], [200, 30, 50], [150, 70, 200], [250, 250, 250]], rng), 15, rng);
    pen.rect(canvas, -0.05, -0.3, 0.05, 1.0, stem);
    pen.ellipse(canvas, (0.22, 0.55), 0.22, 0.09, stem);
    pen.ellipse(canvas, (-0.22, 0.35), 0.22, 0.09, stem);
    let petals = rng.random_range(5..=7);
    for i in 0..petals {
        let a = std::f32::consts::TAU * i as f32 / petals as f32;
        pen.ellipse(canvas, (0.3 * a.cos(), -0.35 + 0.3 * a.sin()), 0.2, 0.2, petal);
    }
    pen.ellipse(canvas, (0.0, -0.35), 0.16, 0.16, jitter([250, 200, 40], 15, rng));
}
