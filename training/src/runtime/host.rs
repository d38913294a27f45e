//! Moving tensors between the host ([`memeguard_onnx::Tensor`]) and ONNX Runtime values,
//! on the CPU or a CUDA device.

use memeguard_onnx::{Tensor, TensorData};
use ort::memory::{AllocationDevice, Allocator};
use ort::value::{DynTensor, PrimitiveTensorElementType, TensorElementType, ValueType};

use super::RuntimeError;
use memeguard_package::Device;

/// An owned host tensor as an ONNX Runtime value in CPU memory (the data moves, no copy).
/// Good for inputs; not for outputs (ONNX Runtime cannot write into Rust-owned memory).
pub fn into_ort(tensor: Tensor) -> Result<DynTensor, RuntimeError> {
    let dims = tensor.dims;
    Ok(match tensor.data {
        TensorData::F32(v) => ort::value::Tensor::from_array((dims, v))?.upcast(),
        TensorData::F64(v) => ort::value::Tensor::from_array((dims, v))?.upcast(),
        TensorData::I64(v) => ort::value::Tensor::from_array((dims, v))?.upcast(),
        TensorData::I32(v) => ort::value::Tensor::from_array((dims, v))?.upcast(),
        TensorData::U8(v) => ort::value::Tensor::from_array((dims, v))?.upcast(),
        TensorData::Bool(v) => ort::value::Tensor::from_array((dims, v))?.upcast(),
    })
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
        Device::Cuda(id) => Ok(into_ort(tensor.clone())?.to(AllocationDevice::CUDA, id)?),
    }
}

/// Uninitialised memory on `allocator`'s device with the type and shape of `like`.
pub fn allocate_like(like: &DynTensor, allocator: &Allocator) -> Result<DynTensor, RuntimeError> {
    let ValueType::Tensor { ty, shape, .. } = like.dtype() else {
        return Err(RuntimeError::Invalid("state values must be tensors".into()));
    };
    Ok(DynTensor::new(allocator, *ty, shape.clone())?)
}

fn extract<T: PrimitiveTensorElementType + Clone>(value: &DynTensor) -> Result<Vec<T>, RuntimeError> {
    Ok(value.try_extract_tensor::<T>()?.1.to_vec())
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
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(RuntimeError::Invalid("only tensors can be read back".into()));
    };
    let dims: Vec<i64> = shape.iter().copied().collect();
    let data = match ty {
        TensorElementType::Float32 => TensorData::F32(extract(value)?),
        TensorElementType::Float64 => TensorData::F64(extract(value)?),
        TensorElementType::Int64 => TensorData::I64(extract(value)?),
        TensorElementType::Int32 => TensorData::I32(extract(value)?),
        TensorElementType::Uint8 => TensorData::U8(extract(value)?),
        TensorElementType::Bool => TensorData::Bool(extract(value)?),
        other => return Err(RuntimeError::Invalid(format!("element type {other:?} cannot be read back"))),
    };
    Ok(Tensor { dims, data })
}
