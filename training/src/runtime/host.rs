//! Moving tensors between the host ([`memeguard_onnx::Tensor`]) and ONNX Runtime values,
//! on the CPU or a CUDA device.

use memeguard_onnx::{Tensor, TensorData};
use memeguard_package::Device;
use memeguard_package::tensor_value::{from_value, to_value};
use ort::memory::{AllocationDevice, Allocator};
use ort::value::{DynTensor, DynTensorValueType, DynValue, PrimitiveTensorElementType, TensorElementType, ValueType};

use super::RuntimeError;

/// A host tensor as an ONNX Runtime value in CPU memory (through the shared bridge
/// [`memeguard_package::tensor_value`]). Good for inputs; not for outputs (ONNX Runtime
/// cannot write into Rust-owned memory).
pub fn to_ort(tensor: &Tensor) -> Result<DynValue, RuntimeError> {
    Ok(to_value(tensor)?)
}

/// The element type of a host tensor, as ONNX Runtime names it.
fn element_type(data: &TensorData) -> TensorElementType {
    match data {
        TensorData::F32(_) => TensorElementType::Float32,
        TensorData::F64(_) => TensorElementType::Float64,
        TensorData::I64(_) => TensorElementType::Int64,
        TensorData::I32(_) => TensorElementType::Int32,
        TensorData::U8(_) => TensorElementType::Uint8,
        TensorData::Bool(_) => TensorElementType::Bool,
    }
}

fn fill<T: PrimitiveTensorElementType + Copy + std::fmt::Debug>(
    value: &mut DynTensor,
    data: &[T],
) -> Result<(), RuntimeError> {
    let (_, dst) = value.try_extract_tensor_mut::<T>()?;
    dst.copy_from_slice(data);
    Ok(())
}

/// A copy of `tensor` in memory owned by ONNX Runtime on `device` (`allocator` allocates on
/// that device), so it can be bound as an input or written as an output.
pub fn upload(tensor: &Tensor, device: Device, allocator: &Allocator) -> Result<DynTensor, RuntimeError> {
    match device {
        Device::Cpu => {
            let mut value = DynTensor::new(allocator, element_type(&tensor.data), tensor.dims.clone())?;
            match &tensor.data {
                TensorData::F32(v) => fill(&mut value, v)?,
                TensorData::F64(v) => fill(&mut value, v)?,
                TensorData::I64(v) => fill(&mut value, v)?,
                TensorData::I32(v) => fill(&mut value, v)?,
                TensorData::U8(v) => fill(&mut value, v)?,
                TensorData::Bool(v) => fill(&mut value, v)?,
            }
            Ok(value)
        }
        Device::Cuda(id) => {
            let host = to_ort(tensor)?.downcast::<DynTensorValueType>()?;
            Ok(host.to(AllocationDevice::CUDA, id)?)
        }
    }
}

/// Uninitialised memory on `allocator`'s device with the type and shape of `like`.
pub fn allocate_like(like: &DynTensor, allocator: &Allocator) -> Result<DynTensor, RuntimeError> {
    let ValueType::Tensor { ty, shape, .. } = like.dtype() else {
        return Err(RuntimeError::Invalid("state values must be tensors".into()));
    };
    Ok(DynTensor::new(allocator, *ty, shape.clone())?)
}

/// A host copy of `value` (copied off the device first when it lives on one).
pub fn download(value: &DynTensor) -> Result<Tensor, RuntimeError> {
    let host;
    let value = if value.memory_info().is_cpu_accessible() {
        value
    } else {
        host = value.to(AllocationDevice::CPU, 0)?;
        &host
    };
    Ok(from_value(&value.view().into_dyn(), "state")?)
}
