#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/serialize.hpp"
#include "tests/helpers.hpp"
#include "tests/scratch.hpp"

using namespace xgrad;
using namespace xgrad::nn;
namespace fs = std::filesystem;

namespace {
// A path for `name` inside this run's scratch folder, with nothing there yet.
fs::path scratch(const std::string& name) {
  static const testing::ScratchDir root("test_serialize");
  fs::remove_all(root / name);
  return root / name;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("npy files: the header NumPy expects, and a round trip in both dtypes") {
  const fs::path dir = scratch("npy");
  fs::create_directories(dir);
  const Tensor a = tensor({{1.5, -2}, {3, 4}, {5, 6.25}});
  save_npy((dir / "a.npy").string(), a);
  const std::string bytes = read_bytes(dir / "a.npy");
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  CHECK(bytes.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }") == 10);
  CHECK((bytes.size() - 6 * 4) % 64 == 0);  // the header is padded to a multiple of 64 bytes
  const Tensor back = load_npy((dir / "a.npy").string());
  CHECK(back.dtype() == kFloat32);
  CHECK(back.shape() == Shape{3, 2});
  CHECK(back.value<float>() == a.value<float>());
  const Tensor d = testing::f64({0.1, 0.2, 0.3});
  save_npy((dir / "d.npy").string(), d);
  CHECK(testing::flat(load_npy((dir / "d.npy").string())) == testing::flat(d));
  save_npy((dir / "s.npy").string(), scalar(2.5, {.dtype = kFloat64}));
  CHECK(load_npy((dir / "s.npy").string()).dim() == 0);
}

TEST_CASE("npy files: Fortran order (np.asfortranarray, a.T) is read into C order") {
  const fs::path dir = scratch("fortran");
  fs::create_directories(dir);
  // a (3, 2) in Fortran order is the bytes of its transpose (2, 3) in C order.
  const Tensor a = testing::f64({{1.5, -2}, {3, 4}, {5, 6.25}});
  save_npy((dir / "t.npy").string(), transpose(a).detach() * 1.0);
  std::string bytes = read_bytes(dir / "t.npy");
  const std::string c_header = "'fortran_order': False, 'shape': (2, 3)";
  const std::string f_header = "'fortran_order': True,  'shape': (3, 2)";  // the same length
  REQUIRE(bytes.find(c_header) != std::string::npos);
  bytes.replace(bytes.find(c_header), c_header.size(), f_header);
  std::ofstream((dir / "f.npy").string(), std::ios::binary) << bytes;
  const Tensor back = load_npy((dir / "f.npy").string());
  CHECK(back.shape() == Shape{3, 2});
  CHECK(testing::flat(back) == testing::flat(a));
}

TEST_CASE("npy files keep every dtype, as NumPy names them") {
  const fs::path dir = scratch("npy_dtypes");
  fs::create_directories(dir);
  const std::vector<Tensor> tensors = {
      testing::i64({{1, -2}, {3, std::int64_t{1} << 40}}), tensor({7, -8}, {.dtype = kInt32}),
      tensor({0, 255}, {.dtype = kUInt8}), tensor({1, 0, 1}, {.dtype = kBool}),
      tensor({1.5}, {.dtype = kFloat64})};
  const std::vector<std::string> descr = {"'<i8'", "'<i4'", "'|u1'", "'|b1'", "'<f8'"};
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    std::string name = "t";  // appended, not "t" + ...: g++ 12 warns on that, wrongly
    name += std::to_string(i);
    name += ".npy";
    const std::string path = (dir / name).string();
    save_npy(path, tensors[i]);
    CHECK(read_bytes(path).find(descr[i]) != std::string::npos);
    const Tensor back = load_npy(path);
    CHECK(back.dtype() == tensors[i].dtype());
    CHECK(back.shape() == tensors[i].shape());
    CHECK(testing::flat(back.to(kFloat64)) == testing::flat(tensors[i].to(kFloat64)));
  }
  // A bool entry that is neither 0 nor 1 is refused, not read as a broken bool.
  std::string bytes = read_bytes(dir / "t3.npy");
  bytes[bytes.size() - 1] = 2;
  std::ofstream((dir / "bad_bool.npy").string(), std::ios::binary) << bytes;
  CHECK_THROWS_WITH_AS(load_npy((dir / "bad_bool.npy").string()),
                       doctest::Contains("bool entry 2 is the byte 2"), ValueError);
}

TEST_CASE("npy files: truncated, corrupt or foreign files give clear errors") {
  const fs::path dir = scratch("npy_bad");
  fs::create_directories(dir);
  save_npy((dir / "a.npy").string(), zeros({100, 10}));
  const std::string good = read_bytes(dir / "a.npy");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  CHECK_THROWS_WITH_AS(load_npy(write("t.npy", good.substr(0, good.size() - 1))),
                       doctest::Contains("needs 4000 bytes"), ValueError);
  CHECK_THROWS_WITH_AS(load_npy(write("m.npy", "PK" + good.substr(2))), doctest::Contains("magic"),
                       ValueError);
  std::string big = good;
  big.replace(big.find("(100, 10)"), 9, "(99999999999, 999999)");
  CHECK_THROWS_AS(load_npy(write("big.npy", big)), ValueError);
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  CHECK_THROWS_WITH_AS(load_npy(write("be.npy", big_endian)), doctest::Contains("'>f4'"),
                       ValueError);
  // The same 4000 bytes read as int64: 500 entries where the header says 1000.
  std::string ints = good;
  ints.replace(ints.find("<f4"), 3, "<i8");
  CHECK_THROWS_WITH_AS(load_npy(write("i.npy", ints)), doctest::Contains("needs 8000 bytes"),
                       ValueError);
  CHECK_THROWS_AS(load_npy((dir / "missing.npy").string()), ValueError);
  CHECK_THROWS_AS(load_npy(write("short.npy", "\x93NUM")), ValueError);
  std::string negative = good;
  negative.replace(negative.find("(100, 10)"), 9, "(-1, 784)");
  CHECK_THROWS_WITH_AS(load_npy(write("neg.npy", negative)), doctest::Contains("non-negative"),
                       ValueError);
  // A header of 30 KB (version 2: a 4-byte length) is read by a loop, not a recursive regex.
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), " + std::string(30000, ' ') + "}\n";
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) v2 += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  const Tensor two = load_npy(write("long.npy", v2 + header + std::string(8, '\0')));
  CHECK(two.shape() == Shape{2});
  std::string nested = std::string("\x93NUMPY\x02\x00", 8);
  const std::string deep = "{'descr': " + std::string(30000, '(') + "}";
  for (int i = 0; i < 4; ++i) nested += static_cast<char>((deep.size() >> (8 * i)) & 0xff);
  CHECK_THROWS_AS(load_npy(write("deep.npy", nested + deep)), ValueError);
}

TEST_CASE(
    "an optimizer's folder with a foreign or absurd file is refused before anything changes") {
  const fs::path dir = scratch("optimizer_bad");
  const Tensor w = Tensor(xt::xarray<float>{1.0f, 2.0f}, true);
  Adam adam({w});
  w.set_grad(Tensor(xt::xarray<float>{0.5f, -0.5f}));
  adam.step();
  save(adam, dir.string());
  fs::copy_file(dir / "exp_avg.0.npy", dir / "exp_avg.99999999999999999999.npy");
  Adam other({w});
  CHECK_THROWS_WITH_AS(load(other, dir.string()), doctest::Contains("NAME.INDEX.npy"), ValueError);
  CHECK(other.steps() == 0);
  fs::remove(dir / "exp_avg.99999999999999999999.npy");
  save_npy((dir / "steps.npy").string(), scalar(NAN, {.dtype = kFloat64}));
  CHECK_THROWS_WITH_AS(load(other, dir.string()), doctest::Contains("whole number of steps"),
                       ValueError);
  save_npy((dir / "steps.npy").string(), scalar(1, {.dtype = kFloat64}));
  save_npy((dir / "lr.npy").string(), scalar(-1, {.dtype = kFloat64}));
  CHECK_THROWS_AS(load(other, dir.string()), ValueError);
}

TEST_CASE("Checkpoint: a checkpoint.json of the wrong types or values is refused, not a crash") {
  const fs::path dir = scratch("checkpoint_bad");
  Generator gen(1);
  MLP net({2, 3}, "relu", kFloat32, gen);
  Checkpoint good;
  good.module(net);
  good.epoch = 1;
  good.save(dir.string());
  std::ifstream in(dir / "checkpoint.json");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    REQUIRE(t.find(from) != std::string::npos);
    t.replace(t.find(from), from.size(), to);
    std::ofstream(dir / "checkpoint.json") << t;
  };
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"epoch\": 1", "\"epoch\": \"3\""},
           {"\"epoch\": 1", "\"epoch\": -3"},
           {"\"epoch\": 1", "\"epoch\": 1000000000000000000000"},
           {"\"metadata\": \"\"", "\"metadata\": [5]"},
           {"\"format\"", "\"fmt\""}}) {
    with(from, to);
    const std::string& change = to;  // INFO's lambda cannot capture a binding (clang 14)
    INFO(change);
    Checkpoint c;
    c.module(net);
    CHECK_THROWS_AS(c.load(dir.string()), ValueError);
  }
  std::ofstream(dir / "checkpoint.json") << "[1, 2, 3]";
  Checkpoint c;
  CHECK_THROWS_AS(c.load(dir.string()), ValueError);
}

TEST_CASE("a module's parameters round-trip through a folder of .npy files") {
  const fs::path dir = scratch("module");
  Generator gen(1);
  MLP a({4, 6, 3}, "relu", kFloat32, gen);
  save(a, dir.string());
  CHECK(fs::exists(dir / "0.weight.npy"));
  CHECK(fs::exists(dir / "2.bias.npy"));
  MLP b({4, 6, 3}, "relu", kFloat32, gen);
  load(b, dir.string());
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(a.parameters()[i].value<float>() == b.parameters()[i].value<float>());
  MLP wrong({4, 7, 3}, "relu");
  CHECK_THROWS_WITH_AS(load(wrong, dir.string()), doctest::Contains("'0.weight' has shape [7, 4]"),
                       ShapeError);
  MLP deeper({4, 6, 3, 2}, "relu");
  CHECK_THROWS_WITH_AS(load(deeper, dir.string()), doctest::Contains("missing"), ValueError);
  CHECK_THROWS_AS(load(b, (dir / "nowhere").string()), ValueError);
}

TEST_CASE("an optimizer's state round-trips: a resumed run continues exactly") {
  const fs::path dir = scratch("optimizer");
  const Tensor x = testing::f64({{0.5, -1.0, 2.0, 0.1}, {1.0, 0.2, -0.3, 0.7}});
  const Tensor y = testing::i64({2, 0});
  auto train = [&](MLP& net, Optimizer& opt, int steps) {
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      softmax_cross_entropy(net(x), y).backward();
      opt.step();
    }
  };
  Generator g1(3), g2(3);
  MLP straight({4, 5, 3}, "tanh", kFloat64, g1), resumed({4, 5, 3}, "tanh", kFloat64, g2);
  Adam opt_straight(straight.parameters(), {.lr = 0.05});
  train(straight, opt_straight, 6);

  {
    Adam first(resumed.parameters(), {.lr = 0.05});
    train(resumed, first, 3);
    save(resumed, (dir / "model").string());
    save(first, (dir / "optim").string());
  }
  Generator g3(99);
  MLP reloaded({4, 5, 3}, "tanh", kFloat64, g3);
  load(reloaded, (dir / "model").string());
  Adam second(reloaded.parameters(), {.lr = 0.05});
  load(second, (dir / "optim").string());
  CHECK(second.steps() == 3);
  train(reloaded, second, 3);
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(testing::flat(reloaded.parameters()[i]) == testing::flat(straight.parameters()[i]));

  SGD sgd(reloaded.parameters(), {.lr = 0.1, .momentum = 0.9});
  CHECK_THROWS_WITH_AS(load(sgd, (dir / "optim").string()), doctest::Contains("exp_avg"),
                       ValueError);

  // Parameter groups keep their own learning rates; a folder of another grouping is refused.
  const auto p = reloaded.parameters();
  SGD grouped({{{p[0], p[1]}}, {{p[2], p[3]}, 0.5}}, {.lr = 0.1});
  grouped.set_lr(0, 0.02);
  save(grouped, (dir / "grouped").string());
  SGD back({{{p[0], p[1]}}, {{p[2], p[3]}}}, {.lr = 0.1});
  load(back, (dir / "grouped").string());
  CHECK(back.lr(0) == 0.02);
  CHECK(back.lr(1) == 0.5);
  SGD single(p, {.lr = 0.1});
  CHECK_THROWS_WITH_AS(load(single, (dir / "grouped").string()),
                       doctest::Contains("holds 2 learning rates for 1 parameter groups"),
                       ValueError);
}

TEST_CASE("Checkpoint: a ReduceLROnPlateau's state (best, bad epochs, per-group lr) comes back") {
  const fs::path dir = scratch("plateau");
  Generator init(1);
  MLP net({3, 4, 2}, "relu", kFloat32, init);
  SGD sgd(
      {ParamGroup(net.linears()[0]->parameters()), ParamGroup(net.linears()[1]->parameters(), 0.5)},
      {.lr = 1.0});
  ReduceLROnPlateau plateau(sgd, {.factor = 0.5, .patience = 1});
  for (double loss : {1.0, 0.9, 0.95, 0.95}) plateau.step(loss);  // one reduction
  CHECK(sgd.lr(1) == 0.25);
  Checkpoint saved;
  saved.module(net).optimizer(sgd).scheduler(plateau);
  saved.save(dir.string());

  MLP copy({3, 4, 2}, "relu", kFloat32, init);
  SGD sgd2({ParamGroup(copy.linears()[0]->parameters()),
            ParamGroup(copy.linears()[1]->parameters(), 0.5)},
           {.lr = 1.0});
  ReduceLROnPlateau plateau2(sgd2, {.factor = 0.5, .patience = 1});
  Checkpoint loaded;
  loaded.module(copy).optimizer(sgd2).scheduler(plateau2);
  loaded.load(dir.string());
  CHECK(sgd2.lr(0) == 0.5);
  CHECK(sgd2.lr(1) == 0.25);
  CHECK(plateau2.state() == plateau.state());
  for (double loss : {0.95, 0.95}) {  // both go on the same way: best 0.9, one bad epoch in hand
    plateau.step(loss);
    plateau2.step(loss);
  }
  CHECK(sgd2.lr(1) == sgd.lr(1));
  StepLR other(sgd2, 2);  // a checkpoint of another schedule's state is refused, before changes
  Checkpoint wrong;
  wrong.module(copy).optimizer(sgd2).scheduler(other);
  CHECK_NOTHROW(wrong.load(dir.string()));  // epoch and base_lr are there: StepLR takes them
  SGD lone(copy.parameters(), {.lr = 1.0});
  ReduceLROnPlateau plateau3(lone);
  Checkpoint grouped;
  grouped.module(copy).optimizer(lone).scheduler(plateau3);
  CHECK_THROWS_WITH_AS(grouped.load(dir.string()), doctest::Contains("2 learning rates for 1"),
                       ValueError);
}

TEST_CASE("Checkpoint: model, optimizer, schedule, generator, epoch and metadata come back") {
  const fs::path dir = scratch("checkpoint");
  Generator init(1);
  MLP net({3, 4, 2}, "tanh", kFloat32, init);
  SGD sgd(net.parameters(), {.lr = 0.1, .momentum = 0.9});
  StepLR schedule(sgd, 2, 0.5);
  Generator shuffle(7);
  const Tensor x = randn({5, 3}, {}, init);
  softmax_cross_entropy(net(x), testing::i64({0, 1, 1, 0, 1})).backward();
  sgd.step();
  schedule.step();
  schedule.step();
  shuffle.engine()();
  Checkpoint saved;
  saved.module(net).optimizer(sgd).scheduler(schedule).generator("shuffle", shuffle);
  saved.epoch = 2;
  saved.metadata = "{\"note\": 1}";
  saved.save(dir.string() + "/");  // a trailing separator names the same folder
  CHECK(fs::exists(dir / "checkpoint.json"));
  CHECK(fs::exists(dir / "model" / "0.weight.npy"));
  CHECK_FALSE(fs::exists(dir.string() + ".new"));
  saved.save(dir.string());  // over an existing checkpoint
  CHECK(Checkpoint::exists(dir.string()));

  Generator other_init(2);
  MLP copy({3, 4, 2}, "tanh", kFloat32, other_init);
  SGD sgd2(copy.parameters(), {.lr = 0.1, .momentum = 0.9});
  StepLR schedule2(sgd2, 2, 0.5);
  Generator shuffle2(99);
  Checkpoint loaded;
  loaded.module(copy).optimizer(sgd2).scheduler(schedule2).generator("shuffle", shuffle2);
  loaded.load(dir.string());
  CHECK(loaded.epoch == 2);
  CHECK(loaded.metadata == "{\"note\": 1}");
  CHECK(schedule2.epoch() == 2);
  CHECK(sgd2.lr() == doctest::Approx(0.05));
  CHECK(shuffle2.engine()() == shuffle.engine()());
  CHECK(copy.named_parameters()[0].second.value<float>() ==
        net.named_parameters()[0].second.value<float>());

  // An interrupted save (the folder moved aside, the new one complete) is finished by load.
  fs::rename(dir, dir.string() + ".new");
  Checkpoint again;
  again.module(copy);
  again.load(dir.string());
  CHECK(fs::exists(dir / "checkpoint.json"));

  MLP wider({3, 5, 2}, "tanh", kFloat32, other_init);
  Checkpoint wrong;
  wrong.module(wider);
  CHECK_THROWS_WITH_AS(wrong.load(dir.string()), doctest::Contains("is of another model"),
                       ValueError);
  Adam adam(copy.parameters());
  Checkpoint wrong_optimizer;
  wrong_optimizer.optimizer(adam);
  CHECK_THROWS_WITH_AS(wrong_optimizer.load(dir.string()),
                       doctest::Contains("is of another optimizer"), ValueError);
  CHECK_THROWS_AS(Checkpoint().load((dir / "nothing").string()), ValueError);
}

TEST_CASE("Checkpoint: a save never replaces a folder that is not a checkpoint") {
  const fs::path dir = scratch("not_a_checkpoint");
  fs::create_directories(dir);
  std::ofstream(dir / "precious.txt") << "keep me";
  Generator gen(1);
  MLP net({2, 3}, "relu", kFloat32, gen);
  Checkpoint c;
  c.module(net);
  CHECK_THROWS_WITH_AS(c.save(dir.string()), doctest::Contains("is not a checkpoint"), ValueError);
  CHECK(fs::exists(dir / "precious.txt"));
}

namespace {
// A small model, optimizer and generator registered in a checkpoint, after one step.
struct Trained {
  Generator gen{3};
  MLP net{{3, 4, 2}, "tanh", kFloat32, gen};
  Adam adam{net.parameters()};
  Checkpoint ckpt;
  Trained() {
    softmax_cross_entropy(net(randn({5, 3}, {}, gen)), testing::i64({0, 1, 1, 0, 1})).backward();
    adam.step();
    ckpt.module(net).optimizer(adam).generator("model", gen);
  }
  std::vector<float> first_weight() const {
    const auto& w = net.named_parameters()[0].second.value<float>();
    return {w.begin(), w.end()};
  }
};

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}
}  // namespace

TEST_CASE("Checkpoint: a user's folders named DIR, DIR.new or DIR.old are never removed") {
  Trained t;
  // results/ holds a user's file, results.old a checkpoint copied by hand: the old recovery made
  // results.old the checkpoint and deleted results/.
  const fs::path results = scratch("results");
  write_text(results / "notes.txt", "mine");
  const fs::path backup = fs::path(results.string() + ".old");
  fs::remove_all(backup);
  const fs::path elsewhere = scratch("elsewhere");
  t.ckpt.save(elsewhere.string());
  fs::copy(elsewhere, backup, fs::copy_options::recursive);
  CHECK_THROWS_WITH_AS(t.ckpt.save(results.string()), doctest::Contains("is not a checkpoint"),
                       ValueError);
  CHECK(read_bytes(results / "notes.txt") == "mine");
  CHECK(fs::exists(backup / "checkpoint.json"));
  CHECK_THROWS_AS(t.ckpt.load(results.string()), ValueError);
  CHECK(read_bytes(results / "notes.txt") == "mine");
  CHECK(fs::exists(backup / "checkpoint.json"));

  // A failed load of data/ leaves data.new/ and data.old/ (the user's) as they were.
  const fs::path data = scratch("data");
  write_text(data / "a.csv", "1");
  for (const char* suffix : {".new", ".old"}) {
    fs::remove_all(data.string() + suffix);
    write_text(fs::path(data.string() + suffix) / "b.csv", "2");
  }
  CHECK_THROWS_WITH_AS(t.ckpt.load(data.string()), doctest::Contains("no checkpoint"), ValueError);
  for (const char* suffix : {".new", ".old"})
    CHECK(read_bytes(fs::path(data.string() + suffix) / "b.csv") == "2");
  // A save beside them refuses to touch them.
  const fs::path fresh = scratch("fresh");
  fs::remove_all(fresh.string() + ".new");
  write_text(fs::path(fresh.string() + ".new") / "b.csv", "2");
  CHECK_THROWS_WITH_AS(t.ckpt.save(fresh.string()), doctest::Contains("refusing to touch it"),
                       ValueError);
  CHECK(read_bytes(fs::path(fresh.string() + ".new") / "b.csv") == "2");
  CHECK_FALSE(fs::exists(fresh));

  // A checkpoint with a user's file added is not replaced either.
  const fs::path ckpt = scratch("ckpt");
  t.ckpt.save(ckpt.string());
  write_text(ckpt / "model" / "README", "my notes");
  CHECK_THROWS_WITH_AS(t.ckpt.save(ckpt.string()), doctest::Contains("not part of a checkpoint"),
                       ValueError);
  CHECK(read_bytes(ckpt / "model" / "README") == "my notes");
}

TEST_CASE("Checkpoint: a symbolic link is never replaced by a save") {
  Trained t;
  const fs::path real = scratch("real"), link = scratch("link");
  t.ckpt.save(real.string());
  fs::create_directory_symlink(real, link);
  CHECK_THROWS_WITH_AS(t.ckpt.save(link.string()), doctest::Contains("is a symbolic link"),
                       ValueError);
  CHECK(fs::is_symlink(link));
  CHECK(fs::exists(real / "checkpoint.json"));
  CHECK_NOTHROW(t.ckpt.load(link.string()));  // reading through a link changes nothing
  CHECK(fs::is_symlink(link));
}

TEST_CASE("Checkpoint: the leftovers of saves cut short anywhere are recovered, and only those") {
  Trained t;
  const fs::path dir = scratch("cut");
  const fs::path fresh = dir.string() + ".new", old = dir.string() + ".old";
  t.ckpt.save(dir.string());
  // Cut short while writing DIR.new: marked, not whole. The next save removes it.
  fs::copy(dir, fresh, fs::copy_options::recursive);
  fs::remove(fresh / "checkpoint.json");
  t.ckpt.epoch = 1;
  t.ckpt.save(dir.string());
  CHECK_FALSE(fs::exists(fresh));
  // Cut short while marking DIR.new (only the marker's .tmp there): removed too.
  fs::create_directory(fresh);
  write_text(fresh / ".xgrad-checkpoint.tmp", "save 12");
  t.ckpt.save(dir.string());
  CHECK_FALSE(fs::exists(fresh));
  // Cut short between the renames: DIR.old and DIR.new, no DIR. Load finishes the move.
  t.ckpt.epoch = 2;
  t.ckpt.save(dir.string());
  fs::copy(dir, old, fs::copy_options::recursive);  // not the real predecessor: kept
  fs::rename(dir, fresh);
  Trained other;
  other.ckpt.load(dir.string());
  CHECK(other.ckpt.epoch == 2);
  CHECK(fs::exists(dir / "checkpoint.json"));
  CHECK_FALSE(fs::exists(fresh));
  CHECK(fs::exists(old / "checkpoint.json"));  // its identity is not the one DIR replaced
  fs::remove_all(old);
  // A copy of DIR named DIR.old is not the checkpoint DIR replaced: kept, and a save refuses.
  fs::copy(dir, old, fs::copy_options::recursive);
  t.ckpt.epoch = 3;
  CHECK_THROWS_WITH_AS(t.ckpt.save(dir.string()), doctest::Contains("refusing to touch it"),
                       ValueError);
  CHECK(fs::exists(old / "checkpoint.json"));
  fs::remove_all(old);
  // Cut short while removing DIR.old: what is left of the predecessor (its marker, removed
  // last) goes at the next save.
  const fs::path predecessor = scratch("predecessor");
  fs::copy(dir, predecessor, fs::copy_options::recursive);
  t.ckpt.save(dir.string());
  fs::create_directory(old);
  fs::copy_file(predecessor / ".xgrad-checkpoint", old / ".xgrad-checkpoint");
  t.ckpt.epoch = 4;
  t.ckpt.save(dir.string());
  CHECK_FALSE(fs::exists(old));
  other.ckpt.load(dir.string());
  CHECK(other.ckpt.epoch == 4);
}

TEST_CASE("Checkpoint: a missing or damaged file is refused, and a failed load changes nothing") {
  Trained t;
  const fs::path dir = scratch("damaged");
  t.ckpt.save(dir.string());
  Trained fresh_model;  // same architecture, other weights? same seed: perturb them
  fresh_model.net.named_parameters()[0].second.set_data(
      zeros_like(fresh_model.net.named_parameters()[0].second));
  const std::vector<float> before = fresh_model.first_weight();

  // Adam's second moment deleted: it would divide by a zero moment.
  const fs::path moment = dir / "optimizer" / "exp_avg_sq.0.npy";
  REQUIRE(fs::exists(moment));
  const std::string saved = read_bytes(moment);
  fs::remove(moment);
  CHECK_THROWS_WITH_AS(fresh_model.ckpt.load(dir.string()),
                       doctest::Contains("is missing optimizer/exp_avg_sq.0.npy"), ValueError);
  CHECK(fresh_model.first_weight() == before);
  // The same size, other bytes.
  std::string flipped = saved;
  flipped.back() = static_cast<char>(flipped.back() ^ 1);
  std::ofstream(moment, std::ios::binary) << flipped;
  CHECK_THROWS_WITH_AS(fresh_model.ckpt.load(dir.string()),
                       doctest::Contains("checksum differs"), ValueError);
  std::ofstream(moment, std::ios::binary) << saved;
  write_text(dir / "optimizer" / "exp_avg.9.npy", "extra");
  CHECK_THROWS_WITH_AS(fresh_model.ckpt.load(dir.string()),
                       doctest::Contains("is not one of the checkpoint's files"), ValueError);
  fs::remove(dir / "optimizer" / "exp_avg.9.npy");

  // A failure after the model's files were read (a generator state that is not one) leaves the
  // module and the optimizer as they were.
  std::string meta = read_bytes(dir / "checkpoint.json");
  const std::size_t at = meta.find("\"model\": \"");
  REQUIRE(at != std::string::npos);
  std::string crafted = meta;
  crafted.replace(at, 10, "\"model\": \"not a state ");
  std::ofstream(dir / "checkpoint.json") << crafted;
  const std::int64_t steps = fresh_model.adam.steps();
  CHECK_THROWS_AS(fresh_model.ckpt.load(dir.string()), ValueError);
  CHECK(fresh_model.first_weight() == before);
  CHECK(fresh_model.adam.steps() == steps);
  std::ofstream(dir / "checkpoint.json") << meta;
  fresh_model.ckpt.load(dir.string());
  CHECK(fresh_model.first_weight() == t.first_weight());

  // Not a regular file: refused, never read (a FIFO would block, /dev/zero fill memory).
  fs::remove(dir / "model" / "0.weight.npy");
  fs::create_symlink("/dev/zero", dir / "model" / "0.weight.npy");
  CHECK_THROWS_WITH_AS(fresh_model.ckpt.load(dir.string()),
                       doctest::Contains("is not a regular file"), ValueError);
  CHECK_THROWS_WITH_AS(load_npy("/dev/zero"), doctest::Contains("is not a regular file"),
                       ValueError);
  fs::remove(dir / "checkpoint.json");
  REQUIRE(mkfifo((dir / "checkpoint.json").c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(fresh_model.ckpt.load(dir.string()),
                       doctest::Contains("is not a regular file"), ValueError);
}
