//! Reads the private construction parameters out of an
//! [`xorf::BinaryFuse8`].
//!
//! xorf keeps `seed`, `segment_length`, `segment_length_mask` and
//! `segment_count_length` private and offers only its `serde` derive to
//! get at them. This module is a serializer that understands exactly that
//! derive's shape (a struct of unsigned integers plus the fingerprint
//! sequence, which it skips: `fingerprints` is public) and nothing else.
//! The filter module checks the result against the keys it was built from,
//! so a future change of xorf's layout cannot go unnoticed.

use serde::ser::{self, Impossible, Serialize};

/// The parameters of a binary fuse filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FuseParams {
    pub seed: u64,
    pub segment_length: u32,
    pub segment_length_mask: u32,
    pub segment_count_length: u32,
}

/// Extracts the parameters, or `None` if xorf's serialized shape is not
/// the expected one.
pub(crate) fn extract(filter: &xorf::BinaryFuse8) -> Option<FuseParams> {
    let mut g = Grab::default();
    filter.serialize(&mut g).ok()?;
    let field = |name: &str| g.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let small = |name: &str| field(name).and_then(|v| u32::try_from(v).ok());
    Some(FuseParams {
        seed: field("seed")?,
        segment_length: small("segment_length")?,
        segment_length_mask: small("segment_length_mask")?,
        segment_count_length: small("segment_count_length")?,
    })
}

#[derive(Default)]
struct Grab {
    fields: Vec<(&'static str, u64)>,
    current: &'static str,
}

#[derive(Debug)]
struct Unexpected;

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unexpected shape of xorf::BinaryFuse8")
    }
}

impl std::error::Error for Unexpected {}

impl ser::Error for Unexpected {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Unexpected
    }
}

type R = Result<(), Unexpected>;

impl Grab {
    fn num(&mut self, v: u64) -> R {
        self.fields.push((self.current, v));
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Grab {
    type Ok = ();
    type Error = Unexpected;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> R {
        if key == "fingerprints" {
            return Ok(()); // public; read directly.
        }
        self.current = key;
        value.serialize(&mut **self)
    }

    fn end(self) -> R {
        Ok(())
    }
}

macro_rules! reject {
    ($($name:ident($($t:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $t),*) -> Result<$ret, Unexpected> { Err(Unexpected) })*
    };
}

impl ser::Serializer for &mut Grab {
    type Ok = ();
    type Error = Unexpected;
    type SerializeSeq = Impossible<(), Unexpected>;
    type SerializeTuple = Impossible<(), Unexpected>;
    type SerializeTupleStruct = Impossible<(), Unexpected>;
    type SerializeTupleVariant = Impossible<(), Unexpected>;
    type SerializeMap = Impossible<(), Unexpected>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Unexpected>;

    fn serialize_u8(self, v: u8) -> R {
        self.num(v.into())
    }
    fn serialize_u16(self, v: u16) -> R {
        self.num(v.into())
    }
    fn serialize_u32(self, v: u32) -> R {
        self.num(v.into())
    }
    fn serialize_u64(self, v: u64) -> R {
        self.num(v)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Unexpected> {
        Ok(self)
    }

    reject! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize)
            -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _v: &T) -> R {
        Err(Unexpected)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _n: &'static str, _v: &T) -> R {
        Err(Unexpected)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _n: &'static str,
        _i: u32,
        _variant: &'static str,
        _v: &T,
    ) -> R {
        Err(Unexpected)
    }
}
