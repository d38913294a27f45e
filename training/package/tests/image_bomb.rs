//! A decompression bomb is refused from its header, without allocating its pixels.
//! This test binary counts every allocation, so "without allocating" is measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use memeguard_package::{ImageError, ImageLimits, decode_image};

struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32fast::hash(&crc_input).to_be_bytes());
    out
}

/// A PNG that claims 30000×30000 RGBA (3.6 GB decoded) in a few dozen bytes.
fn png_bomb_header() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&30000u32.to_be_bytes());
    ihdr.extend_from_slice(&30000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, adaptive filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0x00, 0x00]));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn a_30000_by_30000_png_header_is_refused_without_allocating_it() {
    let bytes = png_bomb_header();
    LARGEST.store(0, Ordering::Relaxed);
    let err = decode_image(&bytes, &ImageLimits::default()).unwrap_err();
    let largest = LARGEST.load(Ordering::Relaxed);
    assert_eq!(err, ImageError::TooManyPixels { width: 30000, height: 30000, max: 40_000_000 });
    assert!(err.to_string().contains("30000×30000"), "{err}");
    assert!(largest < 1 << 20, "the largest allocation while refusing was {largest} bytes");
}
