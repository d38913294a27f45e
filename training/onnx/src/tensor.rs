//! A host tensor: element type, dimensions and data, with conversion to and from
//! `TensorProto` (little-endian `raw_data`).

use crate::proto::{TensorProto, tensor_proto::DataType};

/// Errors converting tensors.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("tensor `{name}`: element type {dtype} is not supported")]
    UnsupportedType { name: String, dtype: i32 },
    #[error("tensor `{name}`: has {got} elements but its dims {dims:?} need {want}")]
    SizeMismatch { name: String, dims: Vec<i64>, got: usize, want: usize },
    #[error("tensor `{name}`: stored as external data, which is not supported")]
    ExternalData { name: String },
}

/// Element storage of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ONNX element type.
    pub fn data_type(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::Float,
            TensorData::F64(_) => DataType::Double,
            TensorData::I64(_) => DataType::Int64,
            TensorData::I32(_) => DataType::Int32,
            TensorData::U8(_) => DataType::Uint8,
            TensorData::Bool(_) => DataType::Bool,
        }
    }
}

/// A dense host tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dims: Vec<i64>,
    pub data: TensorData,
}

impl Tensor {
    fn checked(dims: Vec<i64>, data: TensorData) -> Self {
        let want: i64 = dims.iter().product();
        assert_eq!(want as usize, data.len(), "tensor dims {dims:?} do not match {} elements", data.len());
        Tensor { dims, data }
    }

    /// An f32 tensor. Panics if `data.len()` does not match `dims` (a programming error).
    pub fn f32(dims: impl Into<Vec<i64>>, data: Vec<f32>) -> Self {
        Self::checked(dims.into(), TensorData::F32(data))
    }
    /// An f64 tensor.
    pub fn f64(dims: impl Into<Vec<i64>>, data: Vec<f64>) -> Self {
        Self::checked(dims.into(), TensorData::F64(data))
    }
    /// An i64 tensor.
    pub fn i64(dims: impl Into<Vec<i64>>, data: Vec<i64>) -> Self {
        Self::checked(dims.into(), TensorData::I64(data))
    }
    /// An i32 tensor.
    pub fn i32(dims: impl Into<Vec<i64>>, data: Vec<i32>) -> Self {
        Self::checked(dims.into(), TensorData::I32(data))
    }
    /// A u8 tensor.
    pub fn u8(dims: impl Into<Vec<i64>>, data: Vec<u8>) -> Self {
        Self::checked(dims.into(), TensorData::U8(data))
    }
    /// A bool tensor.
    pub fn bool(dims: impl Into<Vec<i64>>, data: Vec<bool>) -> Self {
        Self::checked(dims.into(), TensorData::Bool(data))
    }
    /// A rank-0 f32 tensor.
    pub fn scalar_f32(v: f32) -> Self {
        Self::f32(Vec::<i64>::new(), vec![v])
    }
    /// A rank-0 f64 tensor.
    pub fn scalar_f64(v: f64) -> Self {
        Self::f64(Vec::<i64>::new(), vec![v])
    }
    /// A rank-0 i64 tensor.
    pub fn scalar_i64(v: i64) -> Self {
        Self::i64(Vec::<i64>::new(), vec![v])
    }
    /// A 1-D i64 tensor (shapes, axes).
    pub fn vec_i64(v: &[i64]) -> Self {
        Self::i64(vec![v.len() as i64], v.to_vec())
    }
    /// A tensor of `dims` filled with `value`, of element type `dtype` (float types only).
    pub fn full(dtype: DataType, dims: &[i64], value: f64) -> Self {
        let n: i64 = dims.iter().product();
        let n = n as usize;
        match dtype {
            DataType::Double => Self::f64(dims.to_vec(), vec![value; n]),
            _ => Self::f32(dims.to_vec(), vec![value as f32; n]),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The ONNX element type.
    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }

    /// The f32 data, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
    /// The f64 data, if this is an f64 tensor.
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            TensorData::F64(v) => Some(v),
            _ => None,
        }
    }
    /// The i64 data, if this is an i64 tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Values converted to f64 (for comparisons and statistics), or `None` for bool.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
        }
    }

    /// Converts to a `TensorProto` named `name`, data in `raw_data`.
    pub fn to_proto(&self, name: &str) -> TensorProto {
        let raw: Vec<u8> = match &self.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        };
        TensorProto {
            dims: self.dims.clone(),
            data_type: Some(self.data_type() as i32),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..Default::default()
        }
    }

    /// Reads a `TensorProto` (raw_data or the typed repeated fields).
    pub fn from_proto(p: &TensorProto) -> Result<Self, TensorError> {
        let name = p.name.clone().unwrap_or_default();
        if p.data_location == Some(crate::proto::tensor_proto::DataLocation::External as i32) {
            return Err(TensorError::ExternalData { name });
        }
        let dims = p.dims.clone();
        let want = dims.iter().product::<i64>() as usize;
        let dtype = p.data_type.unwrap_or(0);
        let raw = p.raw_data.as_deref();
        fn chunks<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            raw.chunks_exact(N).map(|c| f(c.try_into().expect("chunk size"))).collect()
        }
        let data = match DataType::try_from(dtype) {
            Ok(DataType::Float) => TensorData::F32(match raw {
                Some(r) => chunks(r, f32::from_le_bytes),
                None => p.float_data.clone(),
            }),
            Ok(DataType::Double) => TensorData::F64(match raw {
                Some(r) => chunks(r, f64::from_le_bytes),
                None => p.double_data.clone(),
            }),
            Ok(DataType::Int64) => TensorData::I64(match raw {
                Some(r) => chunks(r, i64::from_le_bytes),
                None => p.int64_data.clone(),
            }),
            Ok(DataType::Int32) => TensorData::I32(match raw {
                Some(r) => chunks(r, i32::from_le_bytes),
                None => p.int32_data.clone(),
            }),
            Ok(DataType::Uint8) => TensorData::U8(match raw {
                Some(r) => r.to_vec(),
                None => p.int32_data.iter().map(|&x| x as u8).collect(),
            }),
            Ok(DataType::Bool) => TensorData::Bool(match raw {
                Some(r) => r.iter().map(|&x| x != 0).collect(),
                None => p.int32_data.iter().map(|&x| x != 0).collect(),
            }),
            _ => return Err(TensorError::UnsupportedType { name, dtype }),
        };
        if data.len() != want {
            return Err(TensorError::SizeMismatch { name, dims, got: data.len(), want });
        }
        Ok(Tensor { dims, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_round_trip_keeps_every_type() {
        let cases = vec![
            Tensor::f32(vec![2, 2], vec![1.0, -2.5, 3.25, 0.0]),
            Tensor::f64(vec![3], vec![1e-300, -7.0, 2.5]),
            Tensor::i64(vec![2], vec![i64::MIN, 42]),
            Tensor::i32(vec![1, 2], vec![-1, 7]),
            Tensor::u8(vec![3], vec![0, 128, 255]),
            Tensor::bool(vec![2], vec![true, false]),
            Tensor::scalar_f32(0.5),
        ];
        for t in cases {
            let back = Tensor::from_proto(&t.to_proto("x")).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn typed_fields_are_read_too() {
        let p = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(Tensor::from_proto(&p).unwrap(), Tensor::f32(vec![2], vec![1.0, 2.0]));
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let p = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0],
            name: Some("w".into()),
            ..Default::default()
        };
        let err = Tensor::from_proto(&p).unwrap_err().to_string();
        assert!(err.contains("`w`") && err.contains("3"), "{err}");
    }
}
