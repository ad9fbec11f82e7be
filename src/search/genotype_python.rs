//! The reference's Python notation of a genotype, as `genotypes.py` writes it and as its
//! `namedtuple` prints:
//!
//! ```text
//! Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
//!          reduce=[('max_pool_3x3', 0), ...], reduce_concat=range(2, 6))
//! ```
//!
//! Anything before `Genotype(` (e.g. `DARTS_V2 = `) is ignored. The four fields are keyword
//! arguments in any order; genes are tuples or lists of a quoted op and an index, or FairDARTS'
//! sparse triples `('op', node, input)` (then a node may have fewer than two inputs, and an
//! empty cell `[]` is sparse too); a concat is a list of indices or `range(a, b)`.

use super::genotype::Genotype;
use super::genotypes::GenotypeError;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(usize),
    Str(String),
    Punct(char),
}

fn syntax(msg: impl Into<String>) -> GenotypeError {
    GenotypeError::Syntax(format!("genotype notation: {}", msg.into()))
}

fn tokens(text: &str) -> Result<Vec<Tok>, GenotypeError> {
    let cs: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < cs.len() && cs[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = cs[start..i].iter().collect();
            out.push(Tok::Int(s.parse().map_err(|_| syntax(format!("index {s} too large")))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(cs[start..i].iter().collect()));
        } else if c == '\'' || c == '"' {
            let start = i + 1;
            i = start;
            while i < cs.len() && cs[i] != c {
                i += 1;
            }
            if i == cs.len() {
                return Err(syntax("unterminated string"));
            }
            out.push(Tok::Str(cs[start..i].iter().collect()));
            i += 1;
        } else if "()[],=".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(syntax(format!("unexpected character {c:?}")));
        }
    }
    Ok(out)
}

/// A parsed gene: op, destination state (triples only), input.
type Gene = (String, Option<usize>, usize);

/// A cell's (op, input) genes, and their destination states when the cell is sparse.
type Cell = (Vec<(String, usize)>, Option<Vec<usize>>);

/// A cell's genes and, when they are FairDARTS triples (or the cell is empty, which only a
/// sparse genotype can be), their destinations.
fn split_cell(genes: Vec<Gene>, name: &str) -> Result<Cell, GenotypeError> {
    let triples = genes.iter().filter(|g| g.1.is_some()).count();
    if triples != 0 && triples != genes.len() {
        return Err(syntax(format!("{name} mixes (op, input) pairs and (op, node, input) triples")));
    }
    let sparse = genes.is_empty() || triples > 0;
    let nodes = sparse.then(|| genes.iter().filter_map(|g| g.1).collect());
    Ok((genes.into_iter().map(|(op, _, j)| (op, j)).collect(), nodes))
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self, what: &str) -> Result<Tok, GenotypeError> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| syntax(format!("ended where {what} was expected")))?;
        self.pos += 1;
        Ok(t)
    }

    fn punct(&mut self, c: char) -> Result<(), GenotypeError> {
        match self.next(&format!("'{c}'"))? {
            Tok::Punct(p) if p == c => Ok(()),
            t => Err(syntax(format!("expected '{c}', found {t:?}"))),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn int(&mut self) -> Result<usize, GenotypeError> {
        match self.next("an index")? {
            Tok::Int(v) => Ok(v),
            t => Err(syntax(format!("expected an index, found {t:?}"))),
        }
    }

    /// `[` items separated by commas (trailing comma allowed) `]`, or the same in parentheses.
    fn seq<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, GenotypeError>,
    ) -> Result<Vec<T>, GenotypeError> {
        let close = match self.next("a list")? {
            Tok::Punct('[') => ']',
            Tok::Punct('(') => ')',
            t => return Err(syntax(format!("expected a list, found {t:?}"))),
        };
        let mut out = Vec::new();
        while !self.eat(close) {
            out.push(item(self)?);
            if !self.eat(',') {
                self.punct(close)?;
                break;
            }
        }
        Ok(out)
    }

    /// `('op', j)` or `['op', j]`, or the triple `('op', node, j)`.
    fn gene(&mut self) -> Result<Gene, GenotypeError> {
        let close = match self.next("a gene")? {
            Tok::Punct('(') => ')',
            Tok::Punct('[') => ']',
            t => return Err(syntax(format!("expected a gene ('op', input), found {t:?}"))),
        };
        let op = match self.next("an op name")? {
            Tok::Str(s) => s,
            t => return Err(syntax(format!("expected a quoted op name, found {t:?}"))),
        };
        self.punct(',')?;
        let first = self.int()?;
        let second = if self.eat(',') && self.peek() != Some(&Tok::Punct(close)) {
            let j = self.int()?;
            self.eat(',');
            Some(j)
        } else {
            None
        };
        self.punct(close)?;
        Ok(match second {
            Some(j) => (op, Some(first), j),
            None => (op, None, first),
        })
    }

    /// A list of indices or `range(a, b)` / `range(b)`.
    fn concat(&mut self) -> Result<Vec<usize>, GenotypeError> {
        if self.peek() == Some(&Tok::Ident("range".into())) {
            self.pos += 1;
            let args = self.seq(Self::int)?;
            return match args[..] {
                [b] => Ok((0..b).collect()),
                [a, b] => Ok((a..b).collect()),
                _ => Err(syntax(format!("range with {} arguments", args.len()))),
            };
        }
        self.seq(Self::int)
    }
}

/// Parses `... Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...)`.
pub fn parse(text: &str) -> Result<Genotype, GenotypeError> {
    let start = text.find("Genotype(").ok_or_else(|| syntax("no Genotype(...)"))?;
    let mut p = Parser { toks: tokens(&text[start + "Genotype".len()..])?, pos: 0 };
    p.punct('(')?;
    let (mut normal, mut normal_concat, mut reduce, mut reduce_concat) = (None, None, None, None);
    while !p.eat(')') {
        let key = match p.next("a field name")? {
            Tok::Ident(k) => k,
            t => return Err(syntax(format!("expected a field name, found {t:?}"))),
        };
        p.punct('=')?;
        let dup = match key.as_str() {
            "normal" => normal.replace(p.seq(Parser::gene)?).is_some(),
            "reduce" => reduce.replace(p.seq(Parser::gene)?).is_some(),
            "normal_concat" => normal_concat.replace(p.concat()?).is_some(),
            "reduce_concat" => reduce_concat.replace(p.concat()?).is_some(),
            _ => return Err(syntax(format!("unknown field {key:?}"))),
        };
        if dup {
            return Err(syntax(format!("field {key:?} given twice")));
        }
        if !p.eat(',') {
            p.punct(')')?;
            break;
        }
    }
    if let Some(t) = p.peek() {
        return Err(syntax(format!("unexpected {t:?} after Genotype(...)")));
    }
    let missing = |name: &str| syntax(format!("missing field {name}"));
    let (normal, normal_nodes) = split_cell(normal.ok_or_else(|| missing("normal"))?, "normal")?;
    let (reduce, reduce_nodes) = split_cell(reduce.ok_or_else(|| missing("reduce"))?, "reduce")?;
    let sparse = normal_nodes.is_some() || reduce_nodes.is_some();
    // A sparse genotype's other cell in pairs is dense: two per node, in node order.
    let dense_nodes = |genes: &[(String, usize)]| (0..genes.len()).map(|g| 2 + g / 2).collect();
    Ok(Genotype {
        normal_nodes: if sparse { normal_nodes.unwrap_or_else(|| dense_nodes(&normal)) } else { Vec::new() },
        reduce_nodes: if sparse { reduce_nodes.unwrap_or_else(|| dense_nodes(&reduce)) } else { Vec::new() },
        normal,
        normal_concat: normal_concat.ok_or_else(|| missing("normal_concat"))?,
        reduce,
        reduce_concat: reduce_concat.ok_or_else(|| missing("reduce_concat"))?,
        sparse,
    })
}
