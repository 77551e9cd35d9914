//! The device buffer of a backend this build lacks: the same methods as the real one's,
//! on a type no value of which exists (no device opens, so no buffer is ever made).

use crate::error::Res;

/// A device buffer; none is ever made in this build.
#[derive(Clone)]
pub struct Buf {
    never: std::convert::Infallible,
}

impl Buf {
    pub fn len(&self) -> usize {
        match self.never {}
    }
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }
    pub fn to_vec(&self) -> Res<Vec<f32>> {
        match self.never {}
    }
    pub fn to_u32_vec(&self) -> Res<Vec<u32>> {
        match self.never {}
    }
}
