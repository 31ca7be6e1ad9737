//! libvirt domain XML, built with escaping (quick-xml writer).
