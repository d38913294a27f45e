//! Converting between the graph layer's host [`Tensor`] and ONNX Runtime values.
//! The one bridge used by the training runtime, gradient checks and tests.

use memeguard_onnx::{Tensor, TensorData};
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};

/// Errors converting values.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("value `{name}` has element type {dtype:?}, which memeguard does not convert")]
    Unsupported { name: String, dtype: String },
    #[error("value `{name}` is not a tensor")]
    NotATensor { name: String },
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    #[error(transparent)]
    Runtime(#[from] crate::onnxruntime::RuntimeError),
}

/// Copies a host tensor into a new ONNX Runtime value.
pub fn to_value(t: &Tensor) -> Result<DynValue, ValueError> {
    // Values can only be made once the library is loaded.
    crate::onnxruntime::environment()?;
    let shape = t.dims.clone();
    Ok(match &t.data {
        TensorData::F32(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
        TensorData::F64(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
        TensorData::I64(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
        TensorData::I32(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
        TensorData::U8(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
        TensorData::Bool(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
    })
}

/// Copies an ONNX Runtime tensor value (on the host) into a host tensor; `name` is for errors.
pub fn from_value(v: &DynValue, name: &str) -> Result<Tensor, ValueError> {
    let ValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(ValueError::NotATensor { name: name.to_string() });
    };
    fn grab<T: ort::value::PrimitiveTensorElementType + Clone>(v: &DynValue) -> Result<(Vec<i64>, Vec<T>), ValueError> {
        let (shape, data) = v.try_extract_tensor::<T>()?;
        Ok((shape.iter().copied().collect(), data.to_vec()))
    }
    Ok(match ty {
        TensorElementType::Float32 => {
            let (d, x) = grab::<f32>(v)?;
            Tensor::f32(d, x)
        }
        TensorElementType::Float64 => {
            let (d, x) = grab::<f64>(v)?;
            Tensor::f64(d, x)
        }
        TensorElementType::Int64 => {
            let (d, x) = grab::<i64>(v)?;
            Tensor::i64(d, x)
        }
        TensorElementType::Int32 => {
            let (d, x) = grab::<i32>(v)?;
            Tensor::i32(d, x)
        }
        TensorElementType::Uint8 => {
            let (d, x) = grab::<u8>(v)?;
            Tensor::u8(d, x)
        }
        TensorElementType::Bool => {
            let (d, x) = grab::<bool>(v)?;
            Tensor::bool(d, x)
        }
        other => return Err(ValueError::Unsupported { name: name.to_string(), dtype: format!("{other:?}") }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_supported_type() {
        for t in [
            Tensor::f32(vec![2, 1], vec![1.5, -2.0]),
            Tensor::f64(vec![2], vec![1e-200, 3.0]),
            Tensor::i64(vec![1], vec![-9]),
            Tensor::i32(vec![2], vec![4, 5]),
            Tensor::u8(vec![3], vec![0, 1, 255]),
            Tensor::bool(vec![2], vec![true, false]),
            Tensor::scalar_f32(2.0),
        ] {
            let v = to_value(&t).unwrap();
            assert_eq!(from_value(&v, "t").unwrap(), t);
        }
    }
}
