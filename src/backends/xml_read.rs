//! The one reader of the XML that libvirt writes back (domains, networks, volumes, pools): a walk
//! over its elements through quick-xml, so each parser is a `match` on element paths.

use std::collections::HashMap;

use quick_xml::events::Event;

/// An element's attributes, unescaped.
pub type Attrs = HashMap<String, String>;

/// Walks `xml`, calling `on_end(path, attributes, text)` at the end of every element, children
/// before their parent: `path` is from the root (e.g. `["volume", "target", "path"]`), the
/// attributes and the text (plain runs, CDATA and entity references, joined) are the element's
/// own. An `Err` from `on_end`, or XML that does not parse, ends the walk with its reason.
pub fn walk(xml: &str, mut on_end: impl FnMut(&[&str], &Attrs, String) -> Result<(), String>) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<(String, Attrs)> = Vec::new();
    let mut text = String::new();
    let mut end = |stack: &mut Vec<(String, Attrs)>, text: String| {
        if let Some((_, attrs)) = stack.last() {
            let path: Vec<&str> = stack.iter().map(|(tag, _)| tag.as_str()).collect();
            on_end(&path, attrs, text)?;
        }
        stack.pop();
        Ok::<(), String>(())
    };
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let mut attrs = Attrs::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let value = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                    attrs.insert(String::from_utf8_lossy(a.key.as_ref()).into_owned(), value);
                }
                stack.push((tag, attrs));
                text.clear();
                if matches!(event, Event::Empty(_)) {
                    end(&mut stack, String::new())?;
                }
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
                Some(c) => text.push(c),
                None => {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?;
                    text.push_str(resolved);
                }
            },
            Event::End(_) => end(&mut stack, std::mem::take(&mut text))?,
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_come_children_first_with_their_own_attributes_and_text() {
        let xml = "<a x='1'><b y='&amp;2'>t&lt;1&#65;<![CDATA[<c>]]></b><e/></a>";
        let mut seen = Vec::new();
        walk(xml, |path, attrs, text| {
            let mut keys: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            keys.sort();
            seen.push(format!("{}|{}|{text}", path.join("/"), keys.join(",")));
            Ok(())
        })
        .expect("walk");
        assert_eq!(seen, ["a/b|y=&2|t<1A<c>", "a/e||", "a|x=1|"]);
    }

    #[test]
    fn a_callback_error_or_bad_xml_ends_the_walk() {
        assert_eq!(
            walk("<a><b/></a>", |p, _, _| if p == ["a", "b"] { Err("no b".into()) } else { Ok(()) }),
            Err("no b".into())
        );
        assert!(walk("<a>&nope;</a>", |_, _, _| Ok(())).unwrap_err().contains("unknown entity &nope;"));
        assert!(walk("<a></b>", |_, _, _| Ok(())).is_err());
    }
}
