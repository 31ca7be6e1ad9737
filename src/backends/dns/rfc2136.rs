//! RFC 2136 dynamic updates signed with TSIG (hickory).
