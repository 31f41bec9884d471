//! One restSearch attribute read straight from the parser into the fields a load uses, with MISP's typing
//! quirks: no `Value` tree, and the twenty-odd fields a load ignores (ids, distribution, sharing groups, the
//! event's org) are skipped without being built. It reads exactly what [`super::misp_json::attribute_from_json`]
//! reads from a tree: the same leniency, the last of repeated keys, the same messages.

use super::{lenient_bool, Location, RawAttribute};
use crate::indicator::EventMeta;
use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// An element of a restSearch `Attribute` list: an attribute object, or something else.
pub enum Element<'de> {
    Attribute(Box<Fields<'de>>),
    NotAnObject,
}

/// The fields of one attribute object that a load reads, borrowed from the text where they need no unescaping:
/// the ones a load only looks at (the timestamp, an `event_id` beside an `Event`, an empty comment) are never
/// copied, and a million attributes cost millions fewer allocations.
#[derive(Default, Debug)]
pub struct Fields<'de> {
    pub(super) misp_type: Option<Cow<'de, str>>,
    pub(super) value: Option<Cow<'de, str>>,
    pub(super) to_ids: Option<bool>,
    pub(super) deleted: Option<bool>,
    pub(super) uuid: Option<Cow<'de, str>>,
    pub(super) category: Option<Cow<'de, str>>,
    pub(super) tags: Vec<String>,
    pub(super) timestamp: Option<Cow<'de, str>>,
    pub(super) comment: Option<Cow<'de, str>>,
    pub(super) event_id: Option<Cow<'de, str>>,
    pub(super) event_uuid: Option<Cow<'de, str>>,
    pub(super) event: Option<Arc<EventMeta>>,
}

impl Fields<'_> {
    /// The attribute, or why it is not one (as [`super::misp_json::attribute_from_json`] says it). Inside an event
    /// (`enclosing`), that event is its event whatever its own `Event` or `event_id` say.
    pub fn into_raw(self, location: Location, enclosing: Option<&Arc<EventMeta>>) -> Result<RawAttribute, String> {
        let misp_type = self.misp_type.ok_or("attribute has no type")?;
        let value = self
            .value
            .ok_or_else(|| format!("{misp_type} attribute has no value"))?
            .into_owned();
        let event = enclosing.cloned().unwrap_or_else(|| {
            // A header shared with other attributes is copied only if an `event_id` or `event_uuid` completes it.
            let mut event = self.event.unwrap_or_default();
            if event.id.is_none() && self.event_id.is_some() {
                Arc::make_mut(&mut event).id = self.event_id.map(Cow::into_owned);
            }
            if event.uuid.is_none() && self.event_uuid.is_some() {
                Arc::make_mut(&mut event).uuid = self.event_uuid.map(Cow::into_owned);
            }
            event
        });
        Ok(RawAttribute {
            to_ids: self.to_ids.unwrap_or(true),
            deleted: self.deleted.unwrap_or(false),
            event,
            uuid: self.uuid.map(Cow::into_owned),
            category: self.category.map(Cow::into_owned),
            tags: self.tags,
            timestamp: self.timestamp.and_then(|t| t.parse().ok()),
            comment: self.comment.filter(|c| !c.trim().is_empty()).map(Cow::into_owned),
            location,
            misp_type: match crate::indicator::known_type(&misp_type) {
                Some(t) => Cow::Borrowed(t),
                None => Cow::Owned(misp_type.into_owned()),
            },
            value,
        })
    }
}

/// An object key a load reads, matched without building a string (a reader's keys cannot be borrowed, and an
/// attribute has some thirty of them with its event).
enum Key {
    Type,
    Value,
    ToIds,
    Deleted,
    Uuid,
    Category,
    Tag,
    Timestamp,
    Comment,
    EventId,
    EventUuid,
    Event,
    Id,
    Info,
    Name,
    Attribute,
    Object,
    Response,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "type" => Key::Type,
                    "value" => Key::Value,
                    "to_ids" => Key::ToIds,
                    "deleted" => Key::Deleted,
                    "uuid" => Key::Uuid,
                    "category" => Key::Category,
                    "Tag" => Key::Tag,
                    "timestamp" => Key::Timestamp,
                    "comment" => Key::Comment,
                    "event_id" => Key::EventId,
                    "event_uuid" => Key::EventUuid,
                    "Event" => Key::Event,
                    "id" => Key::Id,
                    "info" => Key::Info,
                    "name" => Key::Name,
                    "Attribute" => Key::Attribute,
                    "Object" => Key::Object,
                    "response" => Key::Response,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Consumes whatever value comes, for the shapes a field does not take.
fn skip<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The scalar visits of a visitor that takes none of them: each gives `$none`. `str` only where listed, as a tag
/// list's element takes a string.
macro_rules! scalars_give {
    ($t:ty, $none:expr) => {
        fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<$t, E> {
            Ok($none)
        }
    };
    ($t:ty, $none:expr, str) => {
        scalars_give!($t, $none);
        fn visit_str<E>(self, _: &str) -> Result<$t, E> {
            Ok($none)
        }
    };
}

/// A string field as `lenient_string` reads it: a string, or a number's JSON text; anything else is absent.
/// Borrowed from the text when it can be (a slice's string without escapes).
struct Lenient<'de>(Option<Cow<'de, str>>);

impl<'de> Lenient<'de> {
    fn owned(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Lenient<'de>, E> {
                Ok(Lenient(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Lenient<'de>, E> {
                Ok(Lenient(Some(Cow::Owned(s.to_string()))))
            }
            fn visit_string<E>(self, s: String) -> Result<Lenient<'de>, E> {
                Ok(Lenient(Some(Cow::Owned(s))))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Lenient<'de>, E> {
                Ok(Lenient(Some(Cow::Owned(n.to_string()))))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Lenient<'de>, E> {
                Ok(Lenient(Some(Cow::Owned(n.to_string()))))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Lenient<'de>, E> {
                Ok(Lenient(
                    serde_json::Number::from_f64(n).map(|n| Cow::Owned(n.to_string())),
                ))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient<'de>, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E>(self) -> Result<Lenient<'de>, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<'de>, A::Error> {
                skip(seq).map(|()| Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<'de>, A::Error> {
                skip_map(map).map(|()| Lenient(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A flag as `lenient_bool` reads it; scalars go through it, anything else is absent.
struct Flag(Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Flag(lenient_bool(&v)))
    }
}

/// A `Tag` field as `tag_names` reads it: a list of tag objects (their `name`) or strings; anything else is none.
struct Tags(Vec<String>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tags;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of tags")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element::<Tag>()? {
                    out.extend(t.0);
                }
                Ok(Tags(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Tags, A::Error> {
                skip_map(map).map(|()| Tags(Vec::new()))
            }
            scalars_give!(Tags, Tags(Vec::new()), str);
        }
        d.deserialize_any(V)
    }
}

/// One element of a `Tag` list.
struct Tag(Option<String>);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a tag")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tag, A::Error> {
                let mut name = None;
                while let Some(k) = map.next_key::<Key>()? {
                    if matches!(k, Key::Name) {
                        name = map.next_value::<Lenient>()?.owned();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Tag(name))
            }
            fn visit_str<E>(self, s: &str) -> Result<Tag, E> {
                Ok(Tag(Some(s.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Tag, A::Error> {
                skip(seq).map(|()| Tag(None))
            }
            scalars_give!(Tag, Tag(None));
        }
        d.deserialize_any(V)
    }
}

/// Reads the value of `k` into `e` when it is a field of the event header (`id`, `uuid`, `info`, `Tag`), as
/// `event_meta` reads it; false, with the value still to be read, for any other key.
fn event_field<'de, A: MapAccess<'de>>(e: &mut EventMeta, k: Key, map: &mut A) -> Result<bool, A::Error> {
    match k {
        Key::Id => e.id = map.next_value::<Lenient>()?.owned(),
        Key::Uuid => e.uuid = map.next_value::<Lenient>()?.owned(),
        Key::Info => e.info = map.next_value::<Lenient>()?.owned(),
        Key::Tag => e.tags = map.next_value::<Tags>()?.0,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A MISP event export or feed event file, `{"Event": {...}}`, or a list of them as MISP's event search answers,
/// `{"response": [{"Event": {...}}, ...]}`: each event's header and attributes read straight into fields, as
/// `load_event` reads them from a tree, and no `Value` tree of the whole document (several times its text) built.
/// Any other shape fails to deserialize, and the caller walks a tree instead.
pub struct EventDoc<'de> {
    /// The events, with whether they came in a `response` list (their index is then part of their locations).
    pub events: Vec<EventParts<'de>>,
    pub listed: bool,
}

/// One event of an [`EventDoc`]. Its attributes are kept as their JSON text, borrowed from the document, until the
/// event's header is whole (MISP writes the event's `Tag` after its attributes): then they are parsed on every core.
pub struct EventParts<'de> {
    pub meta: EventMeta,
    /// The event's `Attribute` list, when it is a list.
    pub attributes: Vec<&'de RawValue>,
    /// Each `Object`'s `Attribute` list, by the object's index, when both are lists.
    pub objects: Vec<(usize, Vec<&'de RawValue>)>,
}

/// A list of attribute elements, or `None` for a field that is not a list (a tree walk ignores it): their text
/// (`&RawValue`, parsed later on every core) or their fields ([`Element`]).
struct Elements<T>(Option<Vec<T>>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Elements<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Elements<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of attributes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elements<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<T>()? {
                    out.push(e);
                }
                Ok(Elements(Some(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Elements<T>, A::Error> {
                skip_map(map).map(|()| Elements(None))
            }
            scalars_give!(Elements<T>, Elements(None), str);
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The `Object` list of an event: each object's `Attribute` list, by index.
struct Objects<'de>(Vec<(usize, Vec<&'de RawValue>)>);

impl<'de> Deserialize<'de> for Objects<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One object's `Attribute` list (the last such key, as a tree keeps it), if it is an object with one.
        struct Object<'de>(Option<Vec<&'de RawValue>>);
        impl<'de> Deserialize<'de> for Object<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Object<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a MISP object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                        let mut attrs = None;
                        while let Some(k) = map.next_key::<Key>()? {
                            if matches!(k, Key::Attribute) {
                                attrs = map.next_value::<Elements<&'de RawValue>>()?.0;
                            } else {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(Object(attrs))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Object<'de>, A::Error> {
                        skip(seq).map(|()| Object(None))
                    }
                    scalars_give!(Object<'de>, Object(None), str);
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Objects<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of MISP objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Objects<'de>, A::Error> {
                let mut out = Vec::new();
                let mut i = 0;
                while let Some(o) = seq.next_element::<Object>()? {
                    if let Some(attrs) = o.0 {
                        out.push((i, attrs));
                    }
                    i += 1;
                }
                Ok(Objects(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Objects<'de>, A::Error> {
                skip_map(map).map(|()| Objects(Vec::new()))
            }
            scalars_give!(Objects<'de>, Objects(Vec::new()), str);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for EventParts<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventParts<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a MISP event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventParts<'de>, A::Error> {
                let mut ev = EventParts {
                    meta: EventMeta::default(),
                    attributes: Vec::new(),
                    objects: Vec::new(),
                };
                while let Some(k) = map.next_key::<Key>()? {
                    match k {
                        Key::Attribute => {
                            ev.attributes = map.next_value::<Elements<&'de RawValue>>()?.0.unwrap_or_default()
                        }
                        Key::Object => ev.objects = map.next_value::<Objects>()?.0,
                        k => {
                            if !event_field(&mut ev.meta, k, &mut map)? {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                }
                Ok(ev)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for EventDoc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventDoc<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a MISP event export")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventDoc<'de>, A::Error> {
                use serde::de::Error;
                let mut doc = None;
                while let Some(k) = map.next_key::<Key>()? {
                    match k {
                        _ if doc.is_some() && matches!(k, Key::Event | Key::Response) => {
                            return Err(A::Error::custom("both or repeated Event and response keys"))
                        }
                        Key::Event => {
                            doc = Some(EventDoc {
                                events: vec![map.next_value::<EventParts>()?],
                                listed: false,
                            })
                        }
                        Key::Response => {
                            // Each item is itself `{"Event": {...}}`, as a tree walk reads it.
                            let items = map.next_value::<Vec<EventDoc>>()?;
                            if items.iter().any(|d| d.listed) {
                                return Err(A::Error::custom("a response inside a response"));
                            }
                            doc = Some(EventDoc {
                                events: items.into_iter().flat_map(|d| d.events).collect(),
                                listed: true,
                            })
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                doc.ok_or_else(|| A::Error::custom("no Event object"))
            }
        }
        d.deserialize_map(V)
    }
}

/// An attribute's `Event` as `event_meta` reads it when it is an object; `None` otherwise.
struct Event(Option<EventMeta>);

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Event;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
                let mut e = EventMeta::default();
                while let Some(k) = map.next_key::<Key>()? {
                    if !event_field(&mut e, k, &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Event(Some(e)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Event, A::Error> {
                skip(seq).map(|()| Event(None))
            }
            scalars_give!(Event, Event(None), str);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a MISP attribute")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element<'de>, A::Error> {
                let mut a = Fields::default();
                while let Some(k) = map.next_key::<Key>()? {
                    match k {
                        Key::Type => a.misp_type = map.next_value::<Lenient>()?.0,
                        Key::Value => a.value = map.next_value::<Lenient>()?.0,
                        Key::ToIds => a.to_ids = map.next_value::<Flag>()?.0,
                        Key::Deleted => a.deleted = map.next_value::<Flag>()?.0,
                        Key::Uuid => a.uuid = map.next_value::<Lenient>()?.0,
                        Key::Category => a.category = map.next_value::<Lenient>()?.0,
                        Key::Tag => a.tags = map.next_value::<Tags>()?.0,
                        Key::Timestamp => a.timestamp = map.next_value::<Lenient>()?.0,
                        Key::Comment => a.comment = map.next_value::<Lenient>()?.0,
                        Key::EventId => a.event_id = map.next_value::<Lenient>()?.0,
                        Key::EventUuid => a.event_uuid = map.next_value::<Lenient>()?.0,
                        Key::Event => a.event = map.next_value::<Event>()?.0.map(Arc::new),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Element::Attribute(Box::new(a)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element<'de>, A::Error> {
                skip(seq).map(|()| Element::NotAnObject)
            }
            scalars_give!(Element<'de>, Element::NotAnObject, str);
        }
        d.deserialize_any(V)
    }
}

/// One page of a restSearch answer read straight into its attributes (no `Value` tree): `{"response":
/// {"Attribute": [...]}}`, the same without `response`, or the empty list MISP answers a page past the end with.
/// Each element is an attribute or why it is not one, in list order; `Err` says why the page is not a page (not
/// JSON, or not this shape).
pub fn restsearch_page(bytes: &[u8]) -> Result<Vec<Result<RawAttribute, String>>, String> {
    let page = serde_json::from_slice::<Page>(bytes).map_err(|e| e.to_string())?;
    let list = page.0.map_err(str::to_string)?;
    Ok(list
        .into_iter()
        .map(|e| match e {
            Element::Attribute(f) => f.into_raw(Location::Unknown, None),
            Element::NotAnObject => Err("attribute is not an object".to_string()),
        })
        .collect())
}

/// A restSearch page's elements, or why it is not a page; `response` is looked into only at the top.
struct Page<'de>(Result<Vec<Element<'de>>, &'static str>);

const NOT_A_LIST: &str = "no response.Attribute list";
const UNEXPECTED: &str = "unexpected response shape";

struct PageSeed {
    top: bool,
}

impl<'de> DeserializeSeed<'de> for PageSeed {
    type Value = Page<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for Page<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PageSeed { top: true }.deserialize(d)
    }
}

impl<'de> Visitor<'de> for PageSeed {
    type Value = Page<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a restSearch answer")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<'de>, A::Error> {
        // As a tree is read: the last of repeated keys, and `response` (at the top) before all else.
        let (mut response, mut attributes) = (None, None);
        while let Some(k) = map.next_key::<Key>()? {
            match k {
                Key::Response if self.top => response = Some(map.next_value_seed(PageSeed { top: false })?),
                Key::Attribute => attributes = Some(map.next_value::<Elements<Element>>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (response, attributes) {
            (Some(r), _) => r,
            (None, Some(Some(list))) => Page(Ok(list)),
            _ => Page(Err(NOT_A_LIST)),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Page<'de>, A::Error> {
        let mut any = false;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            any = true;
        }
        Ok(Page(if any { Err(UNEXPECTED) } else { Ok(Vec::new()) }))
    }
    scalars_give!(Page<'de>, Page(Err(UNEXPECTED)), str);
}

#[cfg(test)]
mod tests {
    use super::{Element, Location};
    use crate::load::misp_json::attribute_from_json;

    /// Every quirk read both ways gives the same attribute or the same message.
    #[test]
    fn fields_read_exactly_what_the_tree_walk_reads() {
        let docs = [
            r#"{"type":"domain","value":"evil.com"}"#,
            r#"{"type":"ip-dst","value":"10.0.0.1","to_ids":"0","deleted":1,"uuid":"5f1c2a9e-7b1d-4c33-9a51-3c2b6f0e4242"}"#,
            r#"{"type":"md5","value":12345,"to_ids":"true","deleted":"no","timestamp":"1456957949","comment":"  "}"#,
            r#"{"type":"domain","value":"a.com","timestamp":1456957949,"comment":"c2","category":"Network activity"}"#,
            r#"{"type":"domain","value":"a.com","Tag":[{"name":"tlp:amber","id":"1"},"osint",{"x":1},7,null,{"name":3}]}"#,
            r#"{"type":"domain","value":"a.com","Tag":{"name":"x"},"Event":{"id":3,"uuid":"u","info":"i","org_id":"1","Tag":[{"name":"e"}]}}"#,
            r#"{"type":"domain","value":"a.com","event_id":"9","event_uuid":"eu","Event":"not an object"}"#,
            r#"{"type":"domain","value":"a.com","event_id":9,"Event":{"info":"only info"}}"#,
            r#"{"type":"domain","value":"first","value":"last","to_ids":[1],"deleted":{"a":1},"uuid":1.5}"#,
            r#"{"type":true,"value":"a.com"}"#,
            r#"{"type":"domain","value":null}"#,
            r#"{"type":"domain","value":"a.com","to_ids":2,"deleted":0.0,"timestamp":"x","comment":["a"]}"#,
        ];
        for doc in docs {
            let tree = match serde_json::from_str::<serde_json::Value>(doc).unwrap() {
                serde_json::Value::Object(o) => attribute_from_json(&o, None, "here"),
                _ => unreachable!(),
            };
            let streamed = match serde_json::from_str::<Element>(doc).unwrap() {
                Element::Attribute(f) => f.into_raw(Location::Text("here".into()), None),
                Element::NotAnObject => panic!("{doc}"),
            };
            assert_eq!(streamed, tree, "{doc}");
        }
        for doc in ["7", "\"x\"", "[1,{}]", "null", "true"] {
            assert!(
                matches!(serde_json::from_str::<Element>(doc).unwrap(), Element::NotAnObject),
                "{doc}"
            );
        }
    }

    /// The tree walk the refresher used to read a page with: what a page must still read as.
    fn page_as_tree(bytes: &[u8]) -> Result<Vec<Result<crate::load::RawAttribute, String>>, &'static str> {
        use serde_json::Value;
        let v: Value = serde_json::from_slice(bytes).unwrap();
        let resp = v.get("response").unwrap_or(&v);
        let list = match resp {
            Value::Object(o) => match o.get("Attribute") {
                Some(Value::Array(a)) => a.as_slice(),
                _ => return Err("no response.Attribute list"),
            },
            Value::Array(a) if a.is_empty() => &[],
            _ => return Err("unexpected response shape"),
        };
        Ok(list
            .iter()
            .map(|a| match a.as_object() {
                Some(o) => attribute_from_json(o, None, "").map(|mut a| {
                    a.location = Location::Unknown;
                    a
                }),
                None => Err("attribute is not an object".to_string()),
            })
            .collect())
    }

    #[test]
    fn a_restsearch_page_reads_as_its_tree_does_in_every_shape() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/misp/restsearch");
        let mut pages: Vec<Vec<u8>> = Vec::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            // The real answers as they are, wrapped in `response`, and with one element that is not an object.
            pages.push(format!(r#"{{"response": {text}}}"#).into_bytes());
            pages.push(text.replacen("[", "[7, ", 1).into_bytes());
            pages.push(bytes);
        }
        for doc in [
            "[]",
            r#"{"response": []}"#,
            r#"{"response": [1]}"#,
            "[{}]",
            r#"{"response": {"Attribute": {"type": "domain"}}}"#,
            r#"{"response": {}}"#,
            r#"{"Attribute": "x", "response": {"Attribute": [{"type":"domain","value":"a.com"}]}}"#,
            r#"{"Attribute": [{"type":"domain"}], "Attribute": [{"type":"domain","value":"b.com"}]}"#,
            r#"{"other": 1}"#,
            "7",
            r#""x""#,
            "null",
        ] {
            pages.push(doc.as_bytes().to_vec());
        }
        for page in &pages {
            let read = super::restsearch_page(page);
            let tree = page_as_tree(page).map_err(str::to_string);
            assert_eq!(read, tree, "{}", String::from_utf8_lossy(page));
        }
        assert!(
            pages
                .iter()
                .filter_map(|p| super::restsearch_page(p).ok())
                .flatten()
                .filter(|a| a.is_ok())
                .count()
                >= 4
        );
        let broken = super::restsearch_page(br#"{"response": {"Attribute": [{"type": }]}}"#);
        assert!(broken.unwrap_err().contains("line 1"));
    }
}
