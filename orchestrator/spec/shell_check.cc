#include "spec/shell_check.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string_view>

namespace sluice::spec {
namespace {

// Stands for an expression in the text the scanner reads. YAML refuses
// control characters in scalars, so no spec text holds it.
constexpr char kSlot = '\x01';
// Stands for a shell expansion ($V, $(...), `...`) in a scanned word.
constexpr char kExpansion = '\x02';

// Programs that run a command line they are given, or whose arguments or
// input are code in a way the check does not follow. An expression anywhere
// in a line that runs one is refused: the value could reach the program
// through a variable (`V="${{ x }}"; eval "$V"`).
constexpr std::array<std::string_view, 51> kCodeRunners = {
    "eval",    "source",  ".",       "trap",     "alias",  "let",    "[[",     "exec",      "command",  "builtin",
    "xargs",   "find",    "parallel", "ssh",     "rsh",    "su",     "sudo",   "doas",      "runuser",  "env",
    "nohup",   "timeout", "nice",    "ionice",   "setsid", "stdbuf", "time",   "watch",     "flock",    "chroot",
    "unshare", "nsenter", "taskset", "strace",   "script", "expect", "at",     "batch",     "dc",       "m4",
    "make",    "busybox", "pwsh",    "powershell", "deno", "bun",    "osascript", "gdb",    "valgrind", "sg",
    "yq"};

// A program that takes its code as text: an interpreter (whose first operand
// is a script file) or a text tool such as awk (whose first operand is the
// program itself). The program's text must be literal: no expression and no
// shell expansion in it.
struct Interpreter {
  std::string_view name;         // exact name, or a prefix when it ends in '*'
  bool program_operand;          // awk, sed, jq: the first operand is program text
  std::string_view code_letters;  // short options that give program text: sh -c, perl -e, sed -e
  std::array<std::string_view, 3> code_longs;   // long options that do: --eval
  std::array<std::string_view, 4> arg_options;  // options whose next word is their (data) argument
  std::array<std::string_view, 2> file_options;  // options naming a program file: awk -f
};
constexpr std::array<Interpreter, 24> kInterpreters = {{
    {"sh", false, "c", {"--command"}, {"-o", "+o", "-O", "+O"}, {}},
    {"bash", false, "c", {"--command"}, {"-o", "+o", "-O", "+O"}, {}},
    {"rbash", false, "c", {}, {"-o", "+o", "-O", "+O"}, {}},
    {"dash", false, "c", {}, {"-o", "+o"}, {}},
    {"ash", false, "c", {}, {"-o", "+o"}, {}},
    {"zsh", false, "c", {}, {"-o", "+o"}, {}},
    {"ksh*", false, "c", {}, {"-o", "+o"}, {}},
    {"mksh", false, "c", {}, {"-o", "+o"}, {}},
    {"yash", false, "c", {}, {"-o", "+o"}, {}},
    {"fish", false, "c", {"--command", "--init-command"}, {}, {}},
    {"csh", false, "cb", {}, {}, {}},
    {"tcsh", false, "cb", {}, {}, {}},
    {"python*", false, "c", {}, {"-W", "-X", "-Q"}, {}},
    {"pypy*", false, "c", {}, {"-W", "-X"}, {}},
    {"perl*", false, "eE", {}, {"-I", "-x"}, {}},
    {"ruby*", false, "e", {}, {"-I", "-r"}, {}},
    {"node*", false, "ep", {"--eval", "--print"}, {"-r", "--require", "--import", "--loader"}, {}},
    {"php*", false, "rRBE", {}, {"-c", "-d", "-z"}, {}},
    {"lua*", false, "e", {}, {"-l"}, {}},
    {"julia*", false, "eE", {"--eval", "--print"}, {}, {}},
    {"awk", true, "e", {"--source"}, {"-v", "-F", "--assign", "--field-separator"}, {"-f", "--file"}},
    {"sed", true, "e", {"--expression"}, {"-l", "--line-length"}, {"-f", "--file"}},
    {"jq", true, "", {}, {"-L", "--indent", "--tab"}, {"-f", "--from-file"}},
    {"tclsh", false, "", {}, {}, {}},
}};
// The same shapes under other names.
constexpr std::array<std::pair<std::string_view, std::string_view>, 8> kInterpreterAliases = {{
    {"nodejs", "node"}, {"Rscript", "lua"}, {"R", "lua"}, {"wish", "tclsh"},
    {"gawk", "awk"}, {"mawk", "awk"}, {"nawk", "awk"}, {"gsed", "sed"}}};
// jq options that take two arguments (a name and a value: data).
constexpr std::array<std::string_view, 4> kTwoArgOptions = {"--arg", "--argjson", "--slurpfile", "--rawfile"};

bool NameMatches(std::string_view pattern, std::string_view name) {
  if (!pattern.empty() && pattern.back() == '*') return name.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
  return pattern == name;
}

const Interpreter* FindInterpreter(std::string_view name) {
  for (const auto& [alias, target] : kInterpreterAliases)
    if (name == alias) name = target;
  for (const Interpreter& i : kInterpreters)
    if (NameMatches(i.name, name)) return &i;
  return nullptr;
}

bool IsCodeRunner(std::string_view name) {
  return std::find(kCodeRunners.begin(), kCodeRunners.end(), name) != kCodeRunners.end();
}

// A word of a command as the shell would pass it, quotes removed; each
// expression in it is kSlot, and `slots` holds their numbers.
struct Word {
  std::string text;
  std::vector<int> slots;
  bool started = false;
  bool quoted = false;  // some of it was quoted or escaped
};
struct Command {
  std::vector<Word> words;
  bool stdin_literal = false;  // `< FILE` or a heredoc with a quoted delimiter
};

// Tokenizes a shell line (POSIX sh, with the bash forms that matter here)
// into the commands it runs, and refuses the slots that stand where no
// quoting can keep a value data.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == kSlot) slot_at_.push_back(i);
  }

  void Run() {
    while (i_ < s_.size()) List('\0', 0);
  }

  std::vector<Command> commands;
  std::vector<std::pair<int, std::string>> refused;  // slot -> reason

 private:
  int SlotAt(size_t pos) const {
    return static_cast<int>(std::lower_bound(slot_at_.begin(), slot_at_.end(), pos) - slot_at_.begin());
  }
  void Refuse(size_t pos, const std::string& why) { refused.emplace_back(SlotAt(pos), why); }

  // Scans commands until `terminator` (')' of `$(`, '`', or '\0' for the end).
  void List(char terminator, int depth) {
    Command cmd;
    Word w;
    int parens = 0;
    // The next word is a redirection's target, not an argument.
    enum class Redirect { kNone, kFile, kInput, kHereString } redirect = Redirect::kNone;
    bool heredoc_delimiter = false;  // the next word ends a heredoc
    bool heredoc_strip = false;
    std::vector<std::pair<std::string, bool>> heredocs;  // delimiter, <<- (strip tabs)
    auto end_word = [&] {
      if (!w.started) return;
      if (heredoc_delimiter) {
        heredocs.emplace_back(w.text, heredoc_strip);
        for (int slot : w.slots) refused.emplace_back(slot, "it is a heredoc's delimiter");
        if (w.quoted) cmd.stdin_literal = true;  // the body is not expanded
        heredoc_delimiter = false;
      } else if (redirect != Redirect::kNone) {
        // A file name is data; a here-string is the command's input.
        if (redirect == Redirect::kInput) cmd.stdin_literal = true;
        if (redirect == Redirect::kHereString)
          cmd.stdin_literal = w.slots.empty() && w.text.find(kExpansion) == std::string::npos;
        redirect = Redirect::kNone;
      } else {
        cmd.words.push_back(std::move(w));
      }
      w = Word{};
    };
    auto end_command = [&] {
      end_word();
      if (!cmd.words.empty()) commands.push_back(std::move(cmd));
      cmd = Command{};
    };
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (terminator == '`' && c == '`') {
        ++i_;
        end_command();
        return;
      }
      if (c == kSlot) {
        if (depth > 0) Refuse(i_, "it stands inside $(...) or backticks, whose text is a program");
        w.started = true;
        w.text += kSlot;
        w.slots.push_back(SlotAt(i_));
        ++i_;
        continue;
      }
      if (c == '\\') {
        w.started = w.quoted = true;
        if (i_ + 1 < s_.size() && s_[i_ + 1] == kSlot) {
          ++i_;  // the slot itself is handled on the next turn
          continue;
        }
        if (i_ + 1 < s_.size() && s_[i_ + 1] != '\n') w.text += s_[i_ + 1];
        i_ += 2;
        continue;
      }
      if (c == '\'') {
        w.started = w.quoted = true;
        ++i_;
        while (i_ < s_.size() && s_[i_] != '\'') {
          if (s_[i_] == kSlot) w.slots.push_back(SlotAt(i_));
          if (s_[i_] == kSlot && depth > 0) Refuse(i_, "it stands inside $(...) or backticks, whose text is a program");
          w.text += s_[i_++];
        }
        ++i_;
        continue;
      }
      if (c == '"') {
        w.started = w.quoted = true;
        ++i_;
        DoubleQuoted(&w, depth);
        continue;
      }
      if (c == '$' || c == '`') {
        w.started = true;
        Expansion(&w, depth);
        continue;
      }
      if (c == '#' && !w.started) {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
        continue;
      }
      if (c == ' ' || c == '\t') {
        end_word();
        ++i_;
        continue;
      }
      if (c == '\n') {
        end_command();
        ++i_;
        for (const auto& [delimiter, strip] : heredocs) HeredocBody(delimiter, strip);
        heredocs.clear();
        continue;
      }
      if (c == '<' || c == '>') {
        // A number right before is the descriptor, not an argument.
        if (w.started && w.slots.empty() && std::all_of(w.text.begin(), w.text.end(), ::isdigit)) w = Word{};
        end_word();
        if (s_.compare(i_, 3, "<<<") == 0) {
          i_ += 3;
          redirect = Redirect::kHereString;
        } else if (s_.compare(i_, 2, "<<") == 0) {
          i_ += 2;
          heredoc_strip = i_ < s_.size() && s_[i_] == '-';
          if (heredoc_strip) ++i_;
          heredoc_delimiter = true;
        } else {
          bool input = c == '<' && s_.compare(i_, 2, "<&") != 0 && s_.compare(i_, 2, "<>") != 0;
          ++i_;
          while (i_ < s_.size() && (s_[i_] == '>' || s_[i_] == '&' || s_[i_] == '|')) ++i_;
          redirect = input ? Redirect::kInput : Redirect::kFile;
        }
        continue;
      }
      if (c == '(') {
        end_command();
        if (s_.compare(i_, 2, "((") == 0) {  // bash arithmetic command: its text is evaluated
          size_t start = i_;
          SkipArithmetic();
          for (size_t p = start; p < i_; ++p)
            if (s_[p] == kSlot) Refuse(p, "it stands inside ((...)), whose text is evaluated");
          continue;
        }
        ++parens;
        ++i_;
        continue;
      }
      if (c == ')') {
        end_command();
        ++i_;
        if (parens == 0 && terminator == ')') return;
        if (parens > 0) --parens;
        continue;
      }
      if (c == ';' || c == '&' || c == '|') {
        end_command();
        ++i_;
        continue;
      }
      w.started = true;
      w.text += c;
      ++i_;
    }
    end_command();
  }

  // After an opening '"', up to and past the closing one.
  void DoubleQuoted(Word* w, int depth) {
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_];
      if (c == '\\' && i_ + 1 < s_.size() && std::strchr("$`\"\\\n", s_[i_ + 1])) {
        w->text += s_[i_ + 1];
        i_ += 2;
      } else if (c == '$' || c == '`') {
        Expansion(w, depth);
      } else {
        if (c == kSlot) {
          w->slots.push_back(SlotAt(i_));
          if (depth > 0) Refuse(i_, "it stands inside $(...) or backticks, whose text is a program");
        }
        w->text += c;
        ++i_;
      }
    }
    ++i_;
  }

  // At '$' or '`': a substitution, arithmetic, a parameter, or a plain '$'.
  // The word gets a '$', so a command named by an expansion is seen as one.
  void Expansion(Word* w, int depth) {
    w->text += kExpansion;
    if (s_[i_] == '`') {
      ++i_;
      List('`', depth + 1);
      return;
    }
    ++i_;
    if (s_.compare(i_, 2, "((") == 0) {
      size_t start = i_;
      SkipArithmetic();
      for (size_t p = start; p < i_; ++p)
        if (s_[p] == kSlot) Refuse(p, "it stands inside $((...)), whose text is evaluated");
      return;
    }
    if (i_ < s_.size() && s_[i_] == '(') {
      ++i_;
      List(')', depth + 1);
      return;
    }
    if (i_ < s_.size() && s_[i_] == '{') {
      // ${name...}: its words may hold quotes and substitutions of their own.
      ++i_;
      while (i_ < s_.size() && s_[i_] != '}') {
        char c = s_[i_];
        if (c == kSlot) {
          Refuse(i_, "it stands inside ${...}");
          ++i_;
        } else if (c == '$' || c == '`') {
          Expansion(w, depth);
        } else if (c == '"') {
          ++i_;
          DoubleQuoted(w, depth);
        } else if (c == '\'') {
          ++i_;
          while (i_ < s_.size() && s_[i_] != '\'') {
            if (s_[i_] == kSlot) Refuse(i_, "it stands inside ${...}");
            ++i_;
          }
          ++i_;
        } else {
          i_ += (c == '\\') ? 2 : 1;
        }
      }
      ++i_;
    }
  }

  // At "((": past the matching "))".
  void SkipArithmetic() {
    int open = 0;
    while (i_ < s_.size()) {
      if (s_[i_] == '(') ++open;
      else if (s_[i_] == ')' && --open == 0) {
        ++i_;
        return;
      }
      ++i_;
    }
  }

  // After the newline that ends a line with `<<`: the heredoc's lines up to
  // its delimiter. Quoted or not, its text goes to a program's input.
  void HeredocBody(const std::string& delimiter, bool strip_tabs) {
    while (i_ < s_.size()) {
      size_t eol = s_.find('\n', i_);
      if (eol == std::string_view::npos) eol = s_.size();
      std::string_view line = s_.substr(i_, eol - i_);
      for (size_t p = i_; p < eol; ++p)
        if (s_[p] == kSlot) Refuse(p, "it stands inside a heredoc, whose text goes to a program's input");
      i_ = std::min(eol + 1, s_.size());
      if (strip_tabs) line.remove_prefix(std::min(line.find_first_not_of('\t'), line.size()));
      if (line == delimiter) return;
    }
  }

  std::string_view s_;
  size_t i_ = 0;
  std::vector<size_t> slot_at_;
};

bool IsAssignment(const Word& w) {
  size_t eq = w.text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  for (size_t i = 0; i < eq; ++i) {
    char c = w.text[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_') || (i == 0 && std::isdigit(static_cast<unsigned char>(c))))
      return false;
  }
  return true;
}

bool IsReservedWord(const std::string& s) {
  static constexpr std::array<std::string_view, 12> kWords = {"!",    "{",  "}",     "if",    "then", "else",
                                                              "elif", "fi", "while", "until", "do",   "done"};
  return std::find(kWords.begin(), kWords.end(), s) != kWords.end();
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// What one command does with the slots of its line.
struct Verdict {
  std::string line_reason;                           // refuses every slot of the line...
  std::vector<int> exempt;                           // ...but these
  std::vector<std::pair<int, std::string>> refused;  // refuses single slots
};

// A word that is, or may hold, program text: it must be literal.
bool Literal(const Word& w) { return w.slots.empty() && w.text.find(kExpansion) == std::string::npos; }

Verdict Judge(const Command& cmd) {
  Verdict v;
  size_t first = 0;
  while (first < cmd.words.size() && (IsAssignment(cmd.words[first]) || IsReservedWord(cmd.words[first].text))) ++first;
  if (first == cmd.words.size()) return v;
  const Word& name_word = cmd.words[first];
  std::string_view name = BaseName(name_word.text);
  if (!name_word.slots.empty() || name.find(kExpansion) != std::string_view::npos) {
    // A value may name the program (one word, as in an argv), but then what
    // that program does with the rest of the line cannot be known.
    v.line_reason = "this line runs a program named by a value or a shell expansion, which Sluice cannot check";
    v.exempt = name_word.slots;
    return v;
  }
  if (name == "for" || name == "case") return v;
  if (IsCodeRunner(name)) {
    v.line_reason = "this line runs `" + std::string(name) + "`, which can run its arguments or input as code";
    return v;
  }
  const Interpreter* interp = FindInterpreter(name);
  if (!interp) return v;
  const std::string shown(name);
  auto program_text = [&](const Word& w, const std::string& how) {
    if (Literal(w)) return;
    v.line_reason = "this line runs `" + how + "` with program text that is not written out literally";
  };
  // Options, then the script (or the program, or nothing), then arguments: data.
  bool program_given = false;  // by a code option or a program file
  size_t i = first + 1;
  for (; i < cmd.words.size(); ++i) {
    const Word& w = cmd.words[i];
    if (w.text.size() < 2 || (w.text[0] != '-' && w.text[0] != '+') || !w.slots.empty()) break;
    if (w.text == "--") {
      ++i;
      break;
    }
    std::string_view opt = w.text;
    std::string_view key = opt.substr(0, opt.find('='));
    bool is_long = opt[1] == '-';
    auto in = [&](const auto& list, std::string_view k) { return std::find(list.begin(), list.end(), k) != list.end(); };
    bool code = is_long ? in(interp->code_longs, key)
                        : opt.find_first_of(interp->code_letters, 1) != std::string_view::npos;
    if (code) {
      // The program is attached, the next word, or (shells) the first operand.
      program_given = true;
      program_text(w, shown + " " + w.text);
      for (size_t j = i + 1; j < cmd.words.size(); ++j) {
        program_text(cmd.words[j], shown + " " + w.text);
        if (cmd.words[j].text.empty() || cmd.words[j].text[0] != '-') break;
      }
      if (!interp->program_operand) {
        // An interpreter's arguments after `-c PROGRAM` are data ($0, $1, sys.argv).
        return v;
      }
      continue;
    }
    if (in(interp->file_options, key)) {
      program_given = true;
      if (key == opt) ++i;
    } else if (in(kTwoArgOptions, opt)) {
      i += 2;
    } else if (in(interp->arg_options, opt)) {
      ++i;
    }
  }
  if (program_given) return v;
  if (i < cmd.words.size() && !interp->program_operand && cmd.words[i].text != "-") {
    for (int slot : cmd.words[i].slots) v.refused.emplace_back(slot, "it names the script `" + shown + "` runs");
    return v;
  }
  if (i < cmd.words.size() && interp->program_operand) {
    program_text(cmd.words[i], shown);
    return v;
  }
  // No script: the program comes from standard input. A literal one is fine.
  if (cmd.stdin_literal) return v;
  v.line_reason = "this line runs `" + shown + "` without a script file, so its program comes from its input";
  return v;
}

// "${{ params.v }} would become part of a program: "
std::string Lead(const Template::Part& p) { return "${{" + p.expr_text + "}} would become part of a program: "; }

constexpr const char* kHint =
    "; pass the value through the step's env: (env: {VALUE: \"${{ ... }}\"}) and use \"$VALUE\" in the program "
    "(specs/pipeline.md, \"Values never become code\")";

std::vector<Injection> Report(const std::vector<const Template::Part*>& slots, const std::vector<Command>& commands,
                              std::vector<std::pair<int, std::string>> refused) {
  std::vector<Verdict> verdicts;
  for (const Command& c : commands) {
    verdicts.push_back(Judge(c));
    refused.insert(refused.end(), verdicts.back().refused.begin(), verdicts.back().refused.end());
  }
  std::vector<std::string> why(slots.size());
  for (const auto& [slot, reason] : refused)
    if (slot >= 0 && static_cast<size_t>(slot) < why.size() && why[slot].empty()) why[slot] = reason;
  for (const Verdict& v : verdicts) {
    if (v.line_reason.empty()) continue;
    for (size_t i = 0; i < slots.size(); ++i)
      if (why[i].empty() && std::find(v.exempt.begin(), v.exempt.end(), int(i)) == v.exempt.end()) why[i] = v.line_reason;
  }
  std::vector<Injection> out;
  for (size_t i = 0; i < slots.size(); ++i)
    if (!why[i].empty()) out.push_back({slots[i]->pos, Lead(*slots[i]) + why[i] + kHint});
  return out;
}

}  // namespace

std::vector<Injection> CheckShellLine(const Template& line) {
  std::string text;
  std::vector<const Template::Part*> slots;
  for (const Template::Part& p : line.parts) {
    if (p.expr) {
      text += kSlot;
      slots.push_back(&p);
    } else {
      text += p.text;
    }
  }
  if (slots.empty()) return {};
  Scanner scan(text);
  scan.Run();
  return Report(slots, scan.commands, std::move(scan.refused));
}

std::vector<Injection> CheckArgv(const std::vector<Template>& argv) {
  if (std::none_of(argv.begin(), argv.end(), [](const Template& t) { return t.HasExpressions(); })) return {};
  Command cmd;
  std::vector<const Template::Part*> slots;
  for (const Template& t : argv) {
    Word w;
    for (const Template::Part& p : t.parts) {
      if (p.expr) {
        w.slots.push_back(static_cast<int>(slots.size()));
        w.text += kSlot;
        slots.push_back(&p);
      } else {
        w.text += p.text;
      }
    }
    cmd.words.push_back(std::move(w));
  }
  // An argv has no shell: no reserved words, no assignments, no expansions.
  std::vector<Command> commands{std::move(cmd)};
  return Report(slots, commands, {});
}

}  // namespace sluice::spec
