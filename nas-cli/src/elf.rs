//! Checks a plugin library's ELF image before the host hands it to the dynamic loader:
//! a truncated or damaged file would otherwise kill the host (SIGBUS on a mapped page
//! past the end of the file, SIGSEGV on a wild header field). The checks are about the
//! headers and the dynamic symbol table; damage deep in code can still crash once the
//! library runs.

use std::path::Path;

/// The ELF magic number.
pub const MAGIC: &[u8; 4] = b"\x7fELF";
pub const CLASS_64: u8 = 2;
pub const DATA_LE: u8 = 1;
pub const DATA_BE: u8 = 2;
/// `e_type` of a shared object.
pub const ET_DYN: u16 = 3;
pub const EHDR_SIZE: usize = 64;
pub const PHDR_SIZE: usize = 56;
pub const SHDR_SIZE: usize = 64;
pub const SYM_SIZE: usize = 24;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PF_X: u32 = 1;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_NOBITS: u32 = 8;
pub const SHT_DYNSYM: u32 = 11;
pub const SHN_UNDEF: u16 = 0;
/// Section indices at and above this are reserved (absolute, common, extended).
pub const SHN_LORESERVE: u16 = 0xff00;
pub const STT_FUNC: u8 = 2;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;

/// The `e_machine` of the running host, where this module knows it.
pub fn host_machine() -> Option<(u16, &'static str)> {
    if cfg!(target_arch = "x86_64") {
        Some((62, "x86-64"))
    } else if cfg!(target_arch = "aarch64") {
        Some((183, "AArch64"))
    } else if cfg!(target_arch = "riscv64") {
        Some((243, "RISC-V"))
    } else if cfg!(target_arch = "powerpc64") {
        Some((21, "PowerPC64"))
    } else if cfg!(target_arch = "s390x") {
        Some((22, "S390"))
    } else if cfg!(target_arch = "loongarch64") {
        Some((258, "LoongArch"))
    } else {
        None
    }
}

/// Whether libraries of this platform are ELF files (everything but macOS and Windows).
pub fn platform_uses_elf() -> bool {
    std::env::consts::DLL_EXTENSION == "so"
}

/// Reads integers of the file's byte order, with every access bounds-checked.
pub struct Image<'a> {
    b: &'a [u8],
    big: bool,
}

impl Image<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], String> {
        at.checked_add(N)
            .and_then(|end| self.b.get(at..end))
            .map(|s| s.try_into().unwrap())
            .ok_or_else(|| format!("truncated: a field at byte {at} lies past the end of the file"))
    }
    fn u8(&self, at: usize) -> Result<u8, String> {
        Ok(self.bytes::<1>(at)?[0])
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        let v = self.bytes::<2>(at)?;
        Ok(if self.big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        let v = self.bytes::<4>(at)?;
        Ok(if self.big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        })
    }
    fn u64(&self, at: usize) -> Result<u64, String> {
        let v = self.bytes::<8>(at)?;
        Ok(if self.big {
            u64::from_be_bytes(v)
        } else {
            u64::from_le_bytes(v)
        })
    }
}

/// A table of `count` entries of `entsize` bytes at `offset`: within the file, or an
/// error saying which table and how it overflows.
pub fn table_end(
    what: &str,
    offset: u64,
    entsize: u64,
    count: u64,
    len: usize,
) -> Result<(), String> {
    let end = entsize
        .checked_mul(count)
        .and_then(|n| n.checked_add(offset));
    match end {
        Some(e) if e <= len as u64 => Ok(()),
        Some(e) => Err(format!(
            "truncated or damaged: the {what} ({count} entries of {entsize} bytes at offset \
             {offset}) end at byte {e}, past the end of the file ({len} bytes)"
        )),
        None => Err(format!(
            "damaged: the {what} ({count} entries of {entsize} bytes at offset {offset}) \
             overflow the address range"
        )),
    }
}

/// A program header (segment).
pub struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// A section header.
pub struct Section {
    kind: u32,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    entsize: u64,
}

/// Checks `bytes` as a plugin library for this host: a 64-bit ELF shared object of the
/// host's machine and byte order, every header table, section and segment within the
/// file, and each of `required` a defined, global function in the dynamic symbol table
/// that lies in an executable segment. Returns those of `optional` that are such
/// functions (one that is there but unsound is an error). The error says what is wrong.
pub fn check_image(
    bytes: &[u8],
    required: &[&str],
    optional: &[&str],
) -> Result<Vec<String>, String> {
    let len = bytes.len();
    if len < 4 || &bytes[..4] != MAGIC {
        return Err(if len < 4 && MAGIC.starts_with(bytes) {
            format!("truncated: {len} bytes, not even an ELF header")
        } else {
            "not an ELF file (bad magic number)".into()
        });
    }
    if len < EHDR_SIZE {
        return Err(format!(
            "truncated: {len} bytes, shorter than an ELF header ({EHDR_SIZE} bytes)"
        ));
    }
    if bytes[4] != CLASS_64 {
        return Err(format!(
            "not a 64-bit ELF file (class {}), this host is 64-bit",
            bytes[4]
        ));
    }
    let host_big = cfg!(target_endian = "big");
    let big = match bytes[5] {
        DATA_LE => false,
        DATA_BE => true,
        d => return Err(format!("damaged ELF header: unknown byte order {d}")),
    };
    if big != host_big {
        return Err(format!(
            "byte order is {}-endian, this host is {}-endian",
            if big { "big" } else { "little" },
            if host_big { "big" } else { "little" }
        ));
    }
    if bytes[6] != 1 {
        return Err(format!("damaged ELF header: ELF version {}", bytes[6]));
    }
    let im = Image { b: bytes, big };
    let e_type = im.u16(16)?;
    if e_type != ET_DYN {
        return Err(format!(
            "not a shared library (ELF type {e_type}, a shared object is {ET_DYN})"
        ));
    }
    let machine = im.u16(18)?;
    if let Some((host, name)) = host_machine() {
        if machine != host {
            return Err(format!(
                "built for another machine (ELF machine {machine}), this host is {name} \
                 (machine {host})"
            ));
        }
    }
    let phoff = im.u64(32)?;
    let shoff = im.u64(40)?;
    let ehsize = im.u16(52)?;
    let phentsize = im.u16(54)?;
    let phnum = im.u16(56)?;
    let shentsize = im.u16(58)?;
    let mut shnum = im.u16(60)? as u64;
    let shstrndx = im.u16(62)?;
    if ehsize as usize != EHDR_SIZE {
        return Err(format!(
            "damaged ELF header: header size {ehsize}, not {EHDR_SIZE}"
        ));
    }

    // Program headers: what the dynamic loader maps.
    if phentsize as usize != PHDR_SIZE {
        return Err(format!(
            "damaged program header table: entry size {phentsize}, not {PHDR_SIZE}"
        ));
    }
    if phnum == 0 || phoff == 0 {
        return Err("damaged: no program header table (nothing to load)".into());
    }
    table_end(
        "program header table",
        phoff,
        PHDR_SIZE as u64,
        phnum as u64,
        len,
    )?;
    let mut segments = vec![];
    for i in 0..phnum as usize {
        let h = phoff as usize + i * PHDR_SIZE;
        let s = Segment {
            kind: im.u32(h)?,
            flags: im.u32(h + 4)?,
            offset: im.u64(h + 8)?,
            vaddr: im.u64(h + 16)?,
            filesz: im.u64(h + 32)?,
            memsz: im.u64(h + 40)?,
        };
        match s.offset.checked_add(s.filesz) {
            Some(end) if end <= len as u64 => {}
            end => {
                return Err(format!(
                    "truncated or damaged: the segment of program header {i} (file bytes \
                     {}..{}) reaches past the end of the file ({len} bytes)",
                    s.offset,
                    end.map_or("overflow".to_string(), |e| e.to_string())
                ))
            }
        }
        if s.kind == PT_LOAD && s.filesz > s.memsz {
            return Err(format!(
                "damaged program header: loadable segment {i} holds {} file bytes in {} bytes \
                 of memory",
                s.filesz, s.memsz
            ));
        }
        if s.vaddr.checked_add(s.memsz).is_none() {
            return Err(format!(
                "damaged program header: segment {i} overflows the address range"
            ));
        }
        segments.push(s);
    }
    if !segments.iter().any(|s| s.kind == PT_LOAD) {
        return Err("damaged program header table: no loadable segment".into());
    }
    let dynamic = segments
        .iter()
        .find(|s| s.kind == PT_DYNAMIC)
        .ok_or("not a dynamic library (no dynamic segment)")?;

    // Section headers: where the dynamic symbol table is.
    if shoff == 0 {
        return Err("no section header table (cannot find the dynamic symbol table)".into());
    }
    if shentsize as usize != SHDR_SIZE {
        return Err(format!(
            "damaged section header table: entry size {shentsize}, not {SHDR_SIZE}"
        ));
    }
    // At least section 0 must be there; with many sections it holds the real count.
    table_end(
        "section header table",
        shoff,
        SHDR_SIZE as u64,
        shnum.max(1),
        len,
    )?;
    if shnum == 0 {
        shnum = im.u64(shoff as usize + 32)?;
    }
    table_end("section header table", shoff, SHDR_SIZE as u64, shnum, len)?;
    if shstrndx != 0 && shstrndx as u64 >= shnum && shstrndx != 0xffff {
        return Err(format!(
            "damaged ELF header: section name table index {shstrndx} of {shnum} sections"
        ));
    }
    let mut sections = vec![];
    for i in 0..shnum as usize {
        let h = shoff as usize + i * SHDR_SIZE;
        let s = Section {
            kind: im.u32(h + 4)?,
            addr: im.u64(h + 16)?,
            offset: im.u64(h + 24)?,
            size: im.u64(h + 32)?,
            link: im.u32(h + 40)?,
            entsize: im.u64(h + 56)?,
        };
        if s.kind != SHT_NOBITS {
            match s.offset.checked_add(s.size) {
                Some(end) if end <= len as u64 => {}
                end => {
                    return Err(format!(
                        "truncated or damaged: the section of section header {i} (file bytes \
                         {}..{}) reaches past the end of the file ({len} bytes)",
                        s.offset,
                        end.map_or("overflow".to_string(), |e| e.to_string())
                    ))
                }
            }
        }
        sections.push(s);
    }

    // The dynamic symbol table and its string table.
    let (dynsym_at, dynsym) = sections
        .iter()
        .enumerate()
        .find(|(_, s)| s.kind == SHT_DYNSYM)
        .ok_or("no dynamic symbol table (.dynsym)")?;
    if dynsym.entsize as usize != SYM_SIZE || dynsym.size % SYM_SIZE as u64 != 0 {
        return Err(format!(
            "damaged dynamic symbol table (section {dynsym_at}): {} bytes of {}-byte entries, \
             symbols are {SYM_SIZE} bytes",
            dynsym.size, dynsym.entsize
        ));
    }
    let dynstr = sections
        .get(dynsym.link as usize)
        .filter(|s| s.kind == SHT_STRTAB)
        .ok_or_else(|| {
            format!(
                "damaged dynamic symbol table: its string table (section {}) is not a string \
                 table",
                dynsym.link
            )
        })?;
    let strings = &bytes[dynstr.offset as usize..(dynstr.offset + dynstr.size) as usize];
    if strings.last() != Some(&0) {
        return Err("damaged dynamic string table (.dynstr): not NUL-terminated".into());
    }
    // What the dynamic loader reads must be these same tables.
    check_dynamic(&im, dynamic, dynsym, dynstr)?;

    let mut found: Vec<(&str, Result<(), String>)> = vec![];
    let wanted = |n: &str| required.contains(&n) || optional.contains(&n);
    for k in 1..(dynsym.size as usize / SYM_SIZE) {
        let e = dynsym.offset as usize + k * SYM_SIZE;
        let name_at = im.u32(e)? as usize;
        let Some(rest) = strings.get(name_at..) else {
            continue;
        };
        let name = &rest[..rest.iter().position(|&c| c == 0).unwrap_or(rest.len())];
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if !wanted(name) {
            continue;
        }
        let info = im.u8(e + 4)?;
        let shndx = im.u16(e + 6)?;
        let value = im.u64(e + 8)?;
        let verdict = if shndx == SHN_UNDEF || shndx >= SHN_LORESERVE {
            Err(format!("symbol `{name}` is not defined in the library"))
        } else if info & 0xf != STT_FUNC || !matches!(info >> 4, STB_GLOBAL | STB_WEAK) {
            Err(format!(
                "symbol `{name}` is not an exported function (type {}, binding {})",
                info & 0xf,
                info >> 4
            ))
        } else if !segments.iter().any(|s| {
            s.kind == PT_LOAD
                && s.flags & PF_X != 0
                && s.vaddr <= value
                && value < s.vaddr + s.memsz
        }) {
            Err(format!(
                "symbol `{name}` points outside the library's code (address {value:#x})"
            ))
        } else {
            Ok(())
        };
        let name = required
            .iter()
            .chain(optional)
            .find(|n| **n == name)
            .unwrap();
        found.push((name, verdict));
    }
    // A name may appear more than once (versions); one sound definition is enough.
    let status = |n: &str| -> Option<Result<(), String>> {
        let mut verdicts = found.iter().filter(|(f, _)| *f == n).peekable();
        verdicts.peek()?;
        Some(match verdicts.clone().find(|(_, v)| v.is_ok()) {
            Some(_) => Ok(()),
            None => Err(verdicts.next().unwrap().1.clone().unwrap_err()),
        })
    };
    for n in required {
        match status(n) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(format!("not a nas plugin: {e}")),
            None => {
                return Err(format!(
                    "not a nas plugin: no symbol `{n}` in the dynamic symbol table"
                ))
            }
        }
    }
    let mut present = vec![];
    for n in optional {
        match status(n) {
            Some(Ok(())) => present.push(n.to_string()),
            Some(Err(e)) => return Err(format!("damaged: {e}")),
            None => {}
        }
    }
    Ok(present)
}

/// The dynamic segment names the same symbol and string tables as the section headers
/// (the loader goes by the segment, this check by the sections).
pub fn check_dynamic(
    im: &Image,
    dynamic: &Segment,
    dynsym: &Section,
    dynstr: &Section,
) -> Result<(), String> {
    const DT_NULL: u64 = 0;
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    const DT_STRSZ: u64 = 10;
    const DT_SYMENT: u64 = 11;
    let (mut symtab, mut strtab, mut strsz) = (None, None, None);
    let end = dynamic.offset + dynamic.filesz;
    let mut at = dynamic.offset;
    while at + 16 <= end {
        let tag = im.u64(at as usize)?;
        let val = im.u64(at as usize + 8)?;
        match tag {
            DT_NULL => break,
            DT_SYMTAB => symtab = Some(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_SYMENT if val != SYM_SIZE as u64 => {
                return Err(format!(
                    "damaged dynamic segment: symbol entry size {val}, not {SYM_SIZE}"
                ))
            }
            _ => {}
        }
        at += 16;
    }
    let mismatch = |what: &str, seg: Option<u64>, sec: u64| -> Result<(), String> {
        match seg {
            Some(v) if v == sec => Ok(()),
            Some(v) => Err(format!(
                "damaged: the dynamic segment's {what} ({v:#x}) is not the section headers' \
                 ({sec:#x})"
            )),
            None => Err(format!("damaged dynamic segment: no {what}")),
        }
    };
    mismatch("symbol table address", symtab, dynsym.addr)?;
    mismatch("string table address", strtab, dynstr.addr)?;
    mismatch("string table size", strsz, dynstr.size)
}

/// Reads the file at `path` and checks it with [`check_image`].
pub fn check_file(
    path: &Path,
    required: &[&str],
    optional: &[&str],
) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    check_image(&bytes, required, optional)
}
