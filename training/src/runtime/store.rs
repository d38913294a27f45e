//! The values that live between steps (parameters, optimizer state, buffers), kept as ONNX
//! Runtime values on the session's device. Each updated value has a second buffer of the
//! same shape: a step reads `current` and writes `spare`, then the two swap, so nothing is
//! copied or reallocated per step and nothing leaves the device.

use std::collections::BTreeMap;

use memeguard_onnx::Tensor;
use memeguard_package::Device;
use ort::memory::Allocator;
use ort::value::{DynTensor, ValueType};

use super::RuntimeError;
use super::host::{allocate_like, download, upload};

struct Slot {
    current: DynTensor,
    /// Written by the next run that updates this value; allocated on first need.
    spare: Option<DynTensor>,
}

/// Named state values on one device.
pub struct StateStore {
    device: Device,
    allocator: Allocator,
    slots: BTreeMap<String, Slot>,
}

impl StateStore {
    /// An empty store allocating with `allocator` (which allocates on `device`).
    pub(crate) fn new(device: Device, allocator: Allocator) -> Self {
        StateStore { device, allocator, slots: BTreeMap::new() }
    }

    /// The device the values live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Sets `name` to a device copy of `value` (inserting it, or replacing it; a replacement
    /// must keep the element type and shape).
    pub fn set(&mut self, name: &str, value: &Tensor) -> Result<(), RuntimeError> {
        if let Some(slot) = self.slots.get(name) {
            let (dtype, dims) = describe(&slot.current);
            if dtype != format!("{:?}", value.data_type()) || dims != value.dims {
                return Err(RuntimeError::Mismatch {
                    name: name.to_string(),
                    expected: format!("{dtype} {dims:?}"),
                    got: format!("{:?} {:?}", value.data_type(), value.dims),
                });
            }
        }
        let current = upload(value, self.device, &self.allocator)?;
        let spare = self.slots.remove(name).and_then(|s| s.spare);
        self.slots.insert(name.to_string(), Slot { current, spare });
        Ok(())
    }

    /// True when the store holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    /// Names of all values, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// A host copy of `name`.
    pub fn get(&self, name: &str) -> Result<Tensor, RuntimeError> {
        download(self.current(name)?)
    }

    /// Element type and dims of `name` without copying it.
    pub fn describe(&self, name: &str) -> Result<(String, Vec<i64>), RuntimeError> {
        Ok(describe(self.current(name)?))
    }

    pub(crate) fn current(&self, name: &str) -> Result<&DynTensor, RuntimeError> {
        self.slots.get(name).map(|s| &s.current).ok_or_else(|| RuntimeError::UnknownState(name.to_string()))
    }

    /// The buffer the next run writes `name`'s new value into.
    pub(crate) fn spare(&mut self, name: &str) -> Result<&mut DynTensor, RuntimeError> {
        let slot = self.slots.get_mut(name).ok_or_else(|| RuntimeError::UnknownState(name.to_string()))?;
        if slot.spare.is_none() {
            slot.spare = Some(allocate_like(&slot.current, &self.allocator)?);
        }
        Ok(slot.spare.as_mut().expect("allocated above"))
    }

    /// Makes the value just written into `name`'s spare buffer current.
    pub(crate) fn swap(&mut self, name: &str) -> Result<(), RuntimeError> {
        let slot = self.slots.get_mut(name).ok_or_else(|| RuntimeError::UnknownState(name.to_string()))?;
        let spare =
            slot.spare.take().ok_or_else(|| RuntimeError::Invalid(format!("`{name}` has no new value to swap in")))?;
        slot.spare = Some(std::mem::replace(&mut slot.current, spare));
        Ok(())
    }
}

fn describe(value: &DynTensor) -> (String, Vec<i64>) {
    match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (tensor_type_name(*ty), shape.iter().copied().collect()),
        other => (format!("{other:?}"), Vec::new()),
    }
}

/// ONNX Runtime's element type under the name [`memeguard_onnx::DataType`] prints.
fn tensor_type_name(ty: ort::value::TensorElementType) -> String {
    use ort::value::TensorElementType as T;
    match ty {
        T::Float32 => "Float",
        T::Float64 => "Double",
        T::Int64 => "Int64",
        T::Int32 => "Int32",
        T::Uint8 => "Uint8",
        T::Bool => "Bool",
        _ => "Other",
    }
    .to_string()
}
