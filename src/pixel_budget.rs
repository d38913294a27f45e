//! Admission of decoded pixels. A small compressed image can decode to gigabytes (a
//! 38 KB PNG of 6300×6300 is 119 MB as RGB), and decoding happens before the scorer's
//! queue admits anything, so the queue's capacity bounds nothing in memory. Each request
//! is therefore charged, from its images' headers alone and before any decoding, the
//! pixels it will hold: more than `--max-request-pixels` in one request is refused (413);
//! more than `--max-pixels-in-flight` across the requests being decoded or scored is
//! refused for now (429 with `Retry-After`). The charge is held until the request's
//! scores are back (decoded images live until then).

use std::io::Cursor;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request's pixels were not admitted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PixelBudgetError {
    #[error("the images of this request have {pixels} pixels in all; the limit is {max} (see --max-request-pixels)")]
    RequestTooLarge { pixels: u64, max: u64 },
    #[error("the server is decoding as many pixels as it admits at once (see --max-pixels-in-flight)")]
    Busy,
}

/// The per-request and global pixel budgets (cheap to clone).
#[derive(Debug, Clone)]
pub struct PixelBudget {
    per_request: u64,
    in_flight: Arc<Semaphore>,
    total: u64,
}

/// Pixels admitted for one request; given back when dropped.
#[derive(Debug)]
pub struct PixelPermit {
    _permit: Option<OwnedSemaphorePermit>,
}

impl PixelBudget {
    /// At most `per_request` pixels in one request and `total` across all requests.
    pub fn new(per_request: u64, total: u64) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS as u64);
        PixelBudget { per_request, in_flight: Arc::new(Semaphore::new(total as usize)), total }
    }

    /// Admits `pixels` now or refuses; never waits.
    pub fn admit(&self, pixels: u64) -> Result<PixelPermit, PixelBudgetError> {
        if pixels == 0 {
            return Ok(PixelPermit { _permit: None });
        }
        if pixels > self.per_request {
            return Err(PixelBudgetError::RequestTooLarge { pixels, max: self.per_request });
        }
        // A request within its own limit but over the global one could never run.
        let pixels = u32::try_from(pixels.min(self.total)).map_err(|_| PixelBudgetError::Busy)?;
        let permit = self.in_flight.clone().try_acquire_many_owned(pixels).map_err(|_| PixelBudgetError::Busy)?;
        Ok(PixelPermit { _permit: Some(permit) })
    }

    /// Pixels admitted and not yet given back.
    pub fn in_flight(&self) -> u64 {
        self.total - self.in_flight.available_permits() as u64
    }
}

/// Width × height from an encoded image's header, without decoding its pixels; 0 when
/// the header cannot be read (the decoder then refuses the image without allocating).
pub fn header_pixels(bytes: &[u8]) -> u64 {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok())
        .map_or(0, |(w, h)| u64::from(w) * u64::from(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_refuse_and_give_back() {
        let budget = PixelBudget::new(100, 150);
        assert_eq!(budget.admit(101).unwrap_err(), PixelBudgetError::RequestTooLarge { pixels: 101, max: 100 });
        let first = budget.admit(100).unwrap();
        assert_eq!(budget.in_flight(), 100);
        assert_eq!(budget.admit(60).unwrap_err(), PixelBudgetError::Busy);
        let second = budget.admit(50).unwrap();
        drop((first, second));
        assert_eq!(budget.in_flight(), 0);
        assert!(budget.admit(0).is_ok());
    }

    #[test]
    fn pixels_come_from_the_header() {
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&[0; 7 * 5 * 3], 7, 5, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert_eq!(header_pixels(&png), 35);
        assert_eq!(header_pixels(b"not an image"), 0);
        assert_eq!(header_pixels(&png[..20]), 0);
    }

    use image::ImageEncoder as _;
}
