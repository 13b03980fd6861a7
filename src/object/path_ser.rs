//! Reads the values at a field path from a [`Serialize`] value without building its
//! JSON: a [`Serializer`](ser::Serializer) that follows the value's own `Serialize`
//! implementation down the path and serialises nothing else.
//!
//! What it reports is what `serde_json::to_value` followed by [`each_value`] reports,
//! value for value and in the same order:
//!
//! - a struct field or map entry is entered only when its name (its JSON name, after
//!   serde's renames) or key is the path's next [`PathStep::Field`]; any other field is
//!   skipped before its value is touched, so its cost is one comparison of names;
//! - a sequence (or tuple) is entered for [`PathStep::Each`] (every element) and
//!   [`PathStep::Index`] (one element; the others are skipped);
//! - `Some`, newtype structs and `#[serde(flatten)]` (which serde writes as map entries)
//!   are transparent, as in JSON; an enum's newtype, tuple and struct variants are the
//!   mappings `{"Variant": ..}` JSON makes of them;
//! - at the path's end, the value is built with serde_json's own value serializer
//!   (a string or a number, usually; a mapping or a list only where the path ends on
//!   one), so every scalar is exactly the `Value` `to_value` would hold;
//! - a key written twice in one mapping (possible with `flatten`) keeps its last value,
//!   as `to_value`'s map does;
//! - what JSON has no fields or elements for (strings, numbers, `null`, unit variants)
//!   reaches nothing when the path goes on past it; bytes are a list of numbers, as in
//!   JSON, and serde_json's private tokens (`RawValue`, arbitrary-precision numbers)
//!   are built by serde_json and walked as JSON.
//!
//! Map keys are compared as strings; a key that is not a string (an integer, a bool, a
//! unit variant) is turned into one by serde_json's own map-key rules, so its errors
//! are serde_json's too.
//!
//! The one difference: only the values on the path are serialised, so a value
//! elsewhere that cannot be serialised (a custom `Serialize` that fails, an `i128` out
//! of JSON's range) makes `to_value` fail and this succeed.

use serde::Serialize;
use serde::ser::{self, Error as _, Impossible, SerializeMap as _};
use serde_json::value::Serializer as JsonSer;
use serde_json::{Error, Value};
use smallvec::SmallVec;

use super::path::{PathStep, each_value};

/// The values found at a path: usually one.
pub(crate) type Found = SmallVec<[Value; 2]>;

/// The values `path` reaches in `value`'s JSON form, in document order, `null`
/// included, without serialising anything off the path.
///
/// # Errors
/// serde_json's error for a value on the path (or a key of a mapping on the path) that
/// cannot be serialised, or a `Serialize` implementation's own error there.
pub(crate) fn values_at<T: Serialize + ?Sized>(
    value: &T,
    path: &[PathStep],
) -> Result<Found, Error> {
    let mut out = Found::new();
    value.serialize(Walk {
        steps: path,
        out: &mut out,
    })?;
    Ok(out)
}

/// The name prefix of the structs serde_json serialises specially (`RawValue`, and
/// `Number` under `arbitrary_precision`).
const JSON_TOKEN: &str = "$serde_json::private::";

type SeqB = <JsonSer as ser::Serializer>::SerializeSeq;
type TupleB = <JsonSer as ser::Serializer>::SerializeTuple;
type TupleStructB = <JsonSer as ser::Serializer>::SerializeTupleStruct;
type TupleVariantB = <JsonSer as ser::Serializer>::SerializeTupleVariant;
type MapB = <JsonSer as ser::Serializer>::SerializeMap;
type StructB = <JsonSer as ser::Serializer>::SerializeStruct;
type StructVariantB = <JsonSer as ser::Serializer>::SerializeStructVariant;

/// Records `v`, reached with `steps` left: itself at the path's end, else what the
/// rest of the path reaches in it.
fn found(steps: &[PathStep], out: &mut Found, v: Value) {
    if steps.is_empty() {
        out.push(v);
    } else {
        each_value(&v, steps, &mut |v| out.push(v.clone()));
    }
}

/// The serializer: `steps` are what is left of the path at the value it serialises.
struct Walk<'p, 'o> {
    steps: &'p [PathStep],
    out: &'o mut Found,
}

impl<'p, 'o> Walk<'p, 'o> {
    /// A value JSON holds whole (a scalar, or bytes as a list): built, then walked.
    fn whole(self, v: Result<Value, Error>) -> Result<(), Error> {
        found(self.steps, self.out, v?);
        Ok(())
    }

    /// A string-like scalar: built only at the path's end (past it, a string reaches
    /// nothing, and building it would only copy it).
    fn text(self, build: impl FnOnce() -> Result<Value, Error>) -> Result<(), Error> {
        if self.steps.is_empty() {
            self.out.push(build()?);
        }
        Ok(())
    }

    /// A list: its elements, if the next step picks any; built whole at the path's end.
    fn elements<B>(
        self,
        build: impl FnOnce() -> Result<B, Error>,
    ) -> Result<Elements<'p, 'o, B>, Error> {
        Ok(match self.steps.split_first() {
            None => Elements::Build(Build::new(build()?, self.steps, self.out)),
            Some((step, rest)) => Elements::picked(step, rest, self.out),
        })
    }

    /// What an enum variant with content (`{"Variant": content}` in JSON) is to the
    /// path: skipped unless the next step names the variant; built whole at the path's
    /// end or where it ends on the content itself; else its content is entered with the
    /// step after the variant's.
    fn variant(&self, variant: &str) -> Variant<'p> {
        match self.steps.split_first() {
            None => Variant::Build,
            Some((PathStep::Field(f), rest)) if f == variant => match rest.split_first() {
                None => Variant::Build,
                Some((step, rest)) => Variant::Enter(step, rest),
            },
            Some(_) => Variant::Skip,
        }
    }
}

/// See [`Walk::variant`].
enum Variant<'p> {
    Skip,
    Build,
    Enter(&'p PathStep, &'p [PathStep]),
}

impl<'p, 'o> ser::Serializer for Walk<'p, 'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Elements<'p, 'o, SeqB>;
    type SerializeTuple = Elements<'p, 'o, TupleB>;
    type SerializeTupleStruct = Elements<'p, 'o, TupleStructB>;
    type SerializeTupleVariant = Elements<'p, 'o, TupleVariantB>;
    type SerializeMap = Entries<'p, 'o>;
    type SerializeStruct = Fields<'p, 'o, StructB>;
    type SerializeStructVariant = Fields<'p, 'o, StructVariantB>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_bool(JsonSer, v))
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_i8(JsonSer, v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_i16(JsonSer, v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_i32(JsonSer, v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_i64(JsonSer, v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_i128(JsonSer, v))
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_u8(JsonSer, v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_u16(JsonSer, v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_u32(JsonSer, v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_u64(JsonSer, v))
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_u128(JsonSer, v))
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_f32(JsonSer, v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_f64(JsonSer, v))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.text(|| ser::Serializer::serialize_char(JsonSer, v))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.text(|| ser::Serializer::serialize_str(JsonSer, v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_bytes(JsonSer, v))
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_none(JsonSer))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_unit(JsonSer))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.whole(ser::Serializer::serialize_unit_struct(JsonSer, name))
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.text(|| ser::Serializer::serialize_unit_variant(JsonSer, name, index, variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self.steps.split_first() {
            None => {
                let v = ser::Serializer::serialize_newtype_variant(
                    JsonSer, name, index, variant, value,
                );
                self.whole(v)
            }
            Some((PathStep::Field(f), rest)) if f == variant => value.serialize(Walk {
                steps: rest,
                out: self.out,
            }),
            Some(_) => Ok(()),
        }
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        self.elements(|| ser::Serializer::serialize_seq(JsonSer, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Error> {
        self.elements(|| ser::Serializer::serialize_tuple(JsonSer, len))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        self.elements(|| ser::Serializer::serialize_tuple_struct(JsonSer, name, len))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Ok(match self.variant(variant) {
            Variant::Skip => Elements::Skip,
            // Built whole and walked as JSON, from the variant's mapping.
            Variant::Build => Elements::Build(Build::new(
                ser::Serializer::serialize_tuple_variant(JsonSer, name, index, variant, len)?,
                self.steps,
                self.out,
            )),
            Variant::Enter(step, rest) => Elements::picked(step, rest, self.out),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Ok(match self.steps.split_first() {
            None => Entries::Build(Build::new(
                ser::Serializer::serialize_map(JsonSer, len)?,
                self.steps,
                self.out,
            )),
            Some((PathStep::Field(name), rest)) => Entries::Walk {
                name,
                to: Enter::new(rest, self.out),
                matched: false,
            },
            Some(_) => Entries::Skip,
        })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Ok(match self.steps.split_first() {
            Some((step, rest)) if !name.starts_with(JSON_TOKEN) => {
                Fields::entered(step, rest, self.out)
            }
            // At the path's end, or a struct serde_json reads specially: built by
            // serde_json, then walked as JSON.
            _ => Fields::Build(Build::new(
                ser::Serializer::serialize_struct(JsonSer, name, len)?,
                self.steps,
                self.out,
            )),
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Ok(match self.variant(variant) {
            Variant::Skip => Fields::Skip,
            Variant::Build => Fields::Build(Build::new(
                ser::Serializer::serialize_struct_variant(JsonSer, name, index, variant, len)?,
                self.steps,
                self.out,
            )),
            Variant::Enter(step, rest) => Fields::entered(step, rest, self.out),
        })
    }
}

/// A built value's serde_json builder, and where what it builds goes.
struct Build<'p, 'o, B> {
    inner: B,
    steps: &'p [PathStep],
    out: &'o mut Found,
}

impl<'p, 'o, B> Build<'p, 'o, B> {
    fn new(inner: B, steps: &'p [PathStep], out: &'o mut Found) -> Self {
        Self { inner, steps, out }
    }

    /// Ends the builder with `end` and records what the rest of the path reaches in the
    /// value.
    fn end_with(self, end: impl FnOnce(B) -> Result<Value, Error>) -> Result<(), Error> {
        found(self.steps, self.out, end(self.inner)?);
        Ok(())
    }
}

/// Enters a field or a map entry whose name is the path's step: the rest of the path
/// is walked in its value.
struct Enter<'p, 'o> {
    rest: &'p [PathStep],
    out: &'o mut Found,
    /// How many values were found before the first entry of this name, so that a
    /// second entry of the same name replaces what the first found (JSON keeps the
    /// last of two equal keys).
    mark: Option<usize>,
}

impl<'p, 'o> Enter<'p, 'o> {
    fn new(rest: &'p [PathStep], out: &'o mut Found) -> Self {
        Self {
            rest,
            out,
            mark: None,
        }
    }

    fn enter<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match self.mark {
            Some(mark) => self.out.truncate(mark),
            None => self.mark = Some(self.out.len()),
        }
        value.serialize(Walk {
            steps: self.rest,
            out: self.out,
        })
    }
}

/// The elements of a list the path's step picks: all of them (`[*]`) or one (`[i]`).
struct Pick<'p, 'o> {
    /// The one element's index, `None` for every element.
    one: Option<usize>,
    at: usize,
    rest: &'p [PathStep],
    out: &'o mut Found,
}

impl Pick<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let picked = self.one.is_none_or(|i| i == self.at);
        self.at += 1;
        if !picked {
            return Ok(());
        }
        value.serialize(Walk {
            steps: self.rest,
            out: self.out,
        })
    }
}

/// A list (a sequence, a tuple, a tuple struct or a tuple variant's content).
enum Elements<'p, 'o, B> {
    /// Nothing on the path is in it.
    Skip,
    Walk(Pick<'p, 'o>),
    Build(Build<'p, 'o, B>),
}

impl<'p, 'o, B> Elements<'p, 'o, B> {
    /// The list, entered with `step` and `rest` after it.
    fn picked(step: &'p PathStep, rest: &'p [PathStep], out: &'o mut Found) -> Self {
        let one = match step {
            PathStep::Each => None,
            PathStep::Index(i) => Some(*i),
            // A list has no fields.
            PathStep::Field(_) => return Self::Skip,
        };
        Self::Walk(Pick {
            one,
            at: 0,
            rest,
            out,
        })
    }
}

/// The [`Elements`] implementation of one of serde's list traits.
macro_rules! elements {
    ($trait:ident, $method:ident) => {
        impl<B: ser::$trait<Ok = Value, Error = Error>> ser::$trait for Elements<'_, '_, B> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                match self {
                    Elements::Skip => Ok(()),
                    Elements::Walk(pick) => pick.element(value),
                    Elements::Build(b) => b.inner.$method(value),
                }
            }

            fn end(self) -> Result<(), Error> {
                match self {
                    Elements::Skip | Elements::Walk(_) => Ok(()),
                    Elements::Build(b) => b.end_with(B::end),
                }
            }
        }
    };
}

elements!(SerializeSeq, serialize_element);
elements!(SerializeTuple, serialize_element);
elements!(SerializeTupleStruct, serialize_field);
elements!(SerializeTupleVariant, serialize_field);

/// A struct (or a struct variant's content): the one field the path names.
enum Fields<'p, 'o, B> {
    /// Nothing on the path is in it.
    Skip,
    Walk {
        name: &'p str,
        to: Enter<'p, 'o>,
    },
    Build(Build<'p, 'o, B>),
}

impl<'p, 'o, B> Fields<'p, 'o, B> {
    /// The struct, entered with `step` and `rest` after it.
    fn entered(step: &'p PathStep, rest: &'p [PathStep], out: &'o mut Found) -> Self {
        match step {
            PathStep::Field(name) => Self::Walk {
                name,
                to: Enter::new(rest, out),
            },
            // A struct has no elements.
            PathStep::Index(_) | PathStep::Each => Self::Skip,
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        // The name first: a field off the path is never serialised.
        match self {
            Fields::Walk { name, to } if *name == key => to.enter(value),
            _ => Ok(()),
        }
    }
}

impl ser::SerializeStruct for Fields<'_, '_, StructB> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self {
            Fields::Build(b) => b.inner.serialize_field(key, value),
            walk => walk.field(key, value),
        }
    }

    fn end(self) -> Result<(), Error> {
        match self {
            Fields::Skip | Fields::Walk { .. } => Ok(()),
            Fields::Build(b) => b.end_with(ser::SerializeStruct::end),
        }
    }
}

impl ser::SerializeStructVariant for Fields<'_, '_, StructVariantB> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self {
            Fields::Build(b) => b.inner.serialize_field(key, value),
            walk => walk.field(key, value),
        }
    }

    fn end(self) -> Result<(), Error> {
        match self {
            Fields::Skip | Fields::Walk { .. } => Ok(()),
            Fields::Build(b) => b.end_with(ser::SerializeStructVariant::end),
        }
    }
}

/// A map (or a struct with `#[serde(flatten)]` fields, which serde writes as one): the
/// entry whose key the path names.
enum Entries<'p, 'o> {
    /// Nothing on the path is in it.
    Skip,
    Walk {
        name: &'p str,
        to: Enter<'p, 'o>,
        /// Whether the last key was `name`: its value is entered.
        matched: bool,
    },
    Build(Build<'p, 'o, MapB>),
}

impl ser::SerializeMap for Entries<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        match self {
            Entries::Skip => Ok(()),
            Entries::Walk { name, matched, .. } => {
                *matched = key_is(key, name)?;
                Ok(())
            }
            Entries::Build(b) => b.inner.serialize_key(key),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match self {
            Entries::Skip => Ok(()),
            Entries::Walk { to, matched, .. } => {
                if std::mem::take(matched) {
                    to.enter(value)?;
                }
                Ok(())
            }
            Entries::Build(b) => b.inner.serialize_value(value),
        }
    }

    fn end(self) -> Result<(), Error> {
        match self {
            Entries::Skip | Entries::Walk { .. } => Ok(()),
            Entries::Build(b) => b.end_with(ser::SerializeMap::end),
        }
    }
}

/// Whether a map's `key` is `name` once serde_json has made it a string.
fn key_is<K: Serialize + ?Sized>(key: &K, name: &str) -> Result<bool, Error> {
    match key.serialize(KeyIs(name)) {
        Ok(Some(is)) => Ok(is),
        // Not a string: serde_json's own rules (integers, bools, unit variants and
        // some more are keys; the rest are errors).
        Ok(None) | Err(_) => Ok(json_key(key)? == name),
    }
}

/// `key` as serde_json's map serializer writes it: its error, if it is no key.
fn json_key<K: Serialize + ?Sized>(key: &K) -> Result<String, Error> {
    let mut map = ser::Serializer::serialize_map(JsonSer, Some(1))?;
    map.serialize_key(key)?;
    map.serialize_value(&())?;
    match map.end()? {
        Value::Object(map) => map
            .into_iter()
            .next()
            .map(|(key, _)| key)
            .ok_or_else(|| Error::custom("serde_json wrote a map entry but kept no key")),
        _ => Err(Error::custom("serde_json wrote a map as something else")),
    }
}

/// Compares a string key (or a newtype of one) with a name, and says `None` for any
/// other key, which [`json_key`] then reads.
struct KeyIs<'n>(&'n str);

/// The answer of [`KeyIs`] for a key that is not a string.
fn not_a_string<E>() -> Result<Option<bool>, E> {
    Ok(None)
}

impl ser::Serializer for KeyIs<'_> {
    type Ok = Option<bool>;
    type Error = Error;
    type SerializeSeq = Impossible<Option<bool>, Error>;
    type SerializeTuple = Impossible<Option<bool>, Error>;
    type SerializeTupleStruct = Impossible<Option<bool>, Error>;
    type SerializeTupleVariant = Impossible<Option<bool>, Error>;
    type SerializeMap = Impossible<Option<bool>, Error>;
    type SerializeStruct = Impossible<Option<bool>, Error>;
    type SerializeStructVariant = Impossible<Option<bool>, Error>;

    fn serialize_str(self, v: &str) -> Result<Option<bool>, Error> {
        Ok(Some(v == self.0))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Option<bool>, Error> {
        value.serialize(self)
    }

    fn serialize_bool(self, _: bool) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_i8(self, _: i8) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_i16(self, _: i16) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_i32(self, _: i32) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_i64(self, _: i64) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_u8(self, _: u8) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_u16(self, _: u16) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_u32(self, _: u32) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_u64(self, _: u64) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_f32(self, _: f32) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_f64(self, _: f64) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_char(self, _: char) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_none(self) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_unit(self) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Option<bool>, Error> {
        not_a_string()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Error::custom("a list is not a string key"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Error::custom("a tuple is not a string key"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error::custom("a tuple struct is not a string key"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error::custom("a tuple variant is not a string key"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error::custom("a map is not a string key"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(Error::custom("a struct is not a string key"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error::custom("a struct variant is not a string key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::{Doc, all_paths, any_doc, draw, fixtures};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::core::DynamicObject;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn f(name: &str) -> PathStep {
        PathStep::Field(name.into())
    }

    /// What the serializer must give: `to_value`, then the walk over it. Errors as
    /// their messages.
    fn via_json<T: Serialize>(v: &T, path: &[PathStep]) -> Result<Vec<Value>, String> {
        let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        each_value(&json, path, &mut |v| out.push(v.clone()));
        Ok(out)
    }

    fn direct<T: Serialize>(v: &T, path: &[PathStep]) -> Result<Vec<Value>, String> {
        values_at(v, path)
            .map(Found::into_vec)
            .map_err(|e| e.to_string())
    }

    /// Every path of every fixture (typed through its own type) reads the same values
    /// both ways; returns how many paths reached a value.
    fn same_for_every_path<T: Serialize + serde::de::DeserializeOwned>(json: &Value) -> usize {
        let obj: T = serde_json::from_value(json.clone()).unwrap();
        let full = serde_json::to_value(&obj).unwrap();
        let mut reached = 0;
        for path in all_paths(&full) {
            let want = via_json(&obj, &path);
            assert_eq!(direct(&obj, &path), want, "{path:?}");
            reached += usize::from(!want.unwrap().is_empty());
        }
        reached
    }

    #[test]
    fn typed_objects_read_every_path_as_their_json_does() {
        for (kind, json) in fixtures() {
            let reached = match kind {
                "Pod" => same_for_every_path::<Pod>(&json),
                "Ingress" => same_for_every_path::<Ingress>(&json),
                "Deployment" => same_for_every_path::<Deployment>(&json),
                "Service" => same_for_every_path::<Service>(&json),
                "ConfigMap" => same_for_every_path::<ConfigMap>(&json),
                "DynamicObject" => same_for_every_path::<DynamicObject>(&json),
                other => panic!("no type for {other}"),
            };
            assert!(reached > 40, "{kind}: only {reached} paths reached a value");
        }
    }

    #[test]
    fn reads_a_pods_node_name_and_nested_lists() {
        let (_, json) = fixtures().swap_remove(0);
        let pod: Pod = serde_json::from_value(json).unwrap();
        let at = |path: &[PathStep]| direct(&pod, path).unwrap();
        assert_eq!(at(&[f("spec"), f("nodeName")]), [json!("node-a")]);
        assert_eq!(
            at(&[
                f("spec"),
                f("containers"),
                PathStep::Each,
                f("ports"),
                PathStep::Each,
                f("containerPort")
            ]),
            [json!(8080), json!(9090), json!(8080), json!(9090)]
        );
        // IntOrString both ways, a Quantity, a Time, a map key with dots.
        assert_eq!(
            at(&[
                f("spec"),
                f("containers"),
                PathStep::Index(0),
                f("livenessProbe"),
                f("httpGet"),
                f("port")
            ]),
            [json!("http")]
        );
        assert_eq!(
            at(&[
                f("spec"),
                f("containers"),
                PathStep::Index(1),
                f("readinessProbe"),
                f("tcpSocket"),
                f("port")
            ]),
            [json!(8080)]
        );
        assert_eq!(
            at(&[
                f("spec"),
                f("containers"),
                PathStep::Each,
                f("resources"),
                f("limits"),
                f("cpu")
            ]),
            [json!("500m"), json!("500m")]
        );
        assert_eq!(
            at(&[f("status"), f("startTime")]),
            [json!("2024-05-01T10:00:01Z")]
        );
        assert_eq!(
            at(&[f("spec"), f("nodeSelector"), f("kubernetes.io/os")]),
            [json!("linux")]
        );
        assert!(at(&[f("spec"), f("nodeName"), f("x")]).is_empty());
        assert!(at(&[f("spec"), f("containers"), f("name")]).is_empty());
        assert!(at(&[f("spec"), PathStep::Each]).is_empty());
    }

    /// Fails the test if it is ever serialised.
    struct Untouchable;

    impl Serialize for Untouchable {
        fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("serialised a field off the path"))
        }
    }

    #[derive(Serialize)]
    struct Guarded {
        before: Untouchable,
        target: Vec<Entry>,
        map: BTreeMap<String, Untouchable>,
        after: Untouchable,
    }

    #[derive(Serialize)]
    struct Entry {
        off: Untouchable,
        on: u8,
    }

    #[test]
    fn fields_off_the_path_are_never_serialised() {
        let g = Guarded {
            before: Untouchable,
            target: vec![
                Entry {
                    off: Untouchable,
                    on: 1,
                },
                Entry {
                    off: Untouchable,
                    on: 2,
                },
            ],
            map: [
                ("a".to_string(), Untouchable),
                ("b".to_string(), Untouchable),
            ]
            .into(),
            after: Untouchable,
        };
        assert_eq!(
            direct(&g, &[f("target"), PathStep::Each, f("on")]),
            Ok(vec![json!(1), json!(2)])
        );
        assert_eq!(
            direct(&g, &[f("target"), PathStep::Index(1), f("on")]),
            Ok(vec![json!(2)])
        );
        assert_eq!(direct(&g, &[f("map"), f("c")]), Ok(vec![]));
        // On the path, its error is serde_json's, as `to_value`'s would be.
        let err = direct(&g, &[f("map"), f("b")]).unwrap_err();
        assert_eq!(err, "serialised a field off the path");
        assert_eq!(via_json(&g, &[]).unwrap_err(), err);
    }

    #[test]
    fn errors_on_the_path_are_serde_jsons() {
        #[derive(Serialize)]
        struct Odd {
            huge: i128,
            pairs: BTreeMap<(u8, u8), u8>,
            floats: BTreeMap<String, f64>,
        }
        let odd = Odd {
            huge: i128::MAX,
            pairs: [((1, 2), 3)].into(),
            floats: [("nan".to_string(), f64::NAN)].into(),
        };
        let want = |path: &[PathStep]| {
            // `to_value` fails on the whole; the serializer only on what the path reaches,
            // with the same message.
            #[derive(Serialize)]
            struct Only<'a, T>(&'a T);
            match path[0] {
                PathStep::Field(ref n) if n == "huge" => via_json(&Only(&odd.huge), &[]),
                _ => via_json(&Only(&odd.pairs), &[]),
            }
        };
        for path in [
            vec![f("huge")],
            vec![f("huge"), f("x")],
            vec![f("pairs"), f("1")],
        ] {
            let got = direct(&odd, &path).unwrap_err();
            assert_eq!(Err(got), want(&path), "{path:?}");
        }
        assert_eq!(
            direct(&odd, &[f("floats"), f("nan")]),
            Ok(vec![Value::Null])
        );
        assert_eq!(direct(&odd, &[f("pairs"), PathStep::Each]), Ok(vec![]));
    }

    #[test]
    fn non_string_map_keys_are_named_as_json_names_them() {
        #[derive(Serialize)]
        struct Keys {
            ints: BTreeMap<i64, &'static str>,
            bools: BTreeMap<bool, u8>,
            chars: BTreeMap<char, u8>,
        }
        let k = Keys {
            ints: [(-1, "minus"), (10, "ten")].into(),
            bools: [(true, 1)].into(),
            chars: [('c', 2)].into(),
        };
        for path in [
            vec![f("ints"), f("-1")],
            vec![f("ints"), f("10")],
            vec![f("ints"), f("1")],
            vec![f("bools"), f("true")],
            vec![f("chars"), f("c")],
        ] {
            assert_eq!(direct(&k, &path), via_json(&k, &path), "{path:?}");
        }
        assert_eq!(direct(&k, &[f("ints"), f("10")]), Ok(vec![json!("ten")]));
    }

    #[test]
    fn a_key_written_twice_keeps_its_last_value() {
        let doc = Doc {
            name: "field".into(),
            extra: [("name".to_string(), json!(["flattened", {"a": 1}]))].into(),
            ..Doc::default()
        };
        assert_eq!(
            direct(&doc, &[f("name")]),
            Ok(vec![json!(["flattened", {"a": 1}])])
        );
        assert_eq!(
            direct(&doc, &[f("name"), PathStep::Each]),
            Ok(vec![json!("flattened"), json!({"a": 1})])
        );
        assert_eq!(
            direct(&doc, &[f("name"), PathStep::Each]),
            via_json(&doc, &[f("name"), PathStep::Each])
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every path to a value of a custom resource with every serde shape (and a
        /// drawn one, with steps that reach nothing) reads what its JSON reads: the
        /// same values in the same order.
        #[test]
        fn reads_what_to_value_then_the_walk_reads(
            doc in any_doc(),
            choices in prop::collection::vec(any::<u16>(), 1..6),
        ) {
            let json = serde_json::to_value(&doc).unwrap();
            let mut paths = all_paths(&json);
            paths.push(draw(&json, &choices));
            for path in paths {
                prop_assert_eq!(direct(&doc, &path), via_json(&doc, &path), "{:?}", path);
            }
        }
    }
}
