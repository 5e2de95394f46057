# The control protocol of g3proxy (this proxy suite): one bootstrap
# capability, `ProcControl`, served on the daemon's Unix socket
# `<control-dir>/<group>_<pid>.sock` (and `<group>.sock`, a symlink to the
# group's newest daemon). g3proxy-ctl is the client.
#
# After editing this file run scripts/capnp-regen.sh and commit the result
# (lib/px-ctl-proto/src/generated/); the crate's tests fail until you do.

@0xe42dc276b1d6cec4;

struct Error {
  # Why an operation failed.
  code @0 :Int32 = -1;
  reason @1 :Text;
  # For config errors: one `file:line:col: key: message` per line.
}

struct OperationResult {
  union {
    ok @0 :Text;
    err @1 :Error;
  }
}

enum QueryStrategy {
  ipv4First @0;
  ipv6First @1;
  ipv4Only @2;
  ipv6Only @3;
}

struct QueryResult {
  union {
    ip @0 :List(Text);
    err @1 :Text;
  }
}

interface EscaperControl {
  publish @0 (data :Text) -> (result :OperationResult);
  # Pushes dynamic data (JSON) to the escaper (direct_float: bind IPs).
}

interface ResolverControl {
  query @0 (domain :Text, strategy :QueryStrategy) -> (result :QueryResult);
}

interface UserGroupControl {
  listStaticUser @0 () -> (result :List(Text));
  listDynamicUser @1 () -> (result :List(Text));
}

struct FetchEscaper {
  union {
    escaper @0 :EscaperControl;
    err @1 :Error;
  }
}

struct FetchResolver {
  union {
    resolver @0 :ResolverControl;
    err @1 :Error;
  }
}

struct FetchUserGroup {
  union {
    userGroup @0 :UserGroupControl;
    err @1 :Error;
  }
}

interface ProcControl {
  version @0 () -> (version :Text);
  offline @1 () -> (result :OperationResult);
  # Stop accepting (or hand the listeners to a successor), drain, exit.

  reloadUserGroup @2 (name :Text) -> (result :OperationResult);
  reloadResolver @3 (name :Text) -> (result :OperationResult);
  reloadAuditor @4 (name :Text) -> (result :OperationResult);
  reloadEscaper @5 (name :Text) -> (result :OperationResult);
  reloadServer @6 (name :Text) -> (result :OperationResult);

  getUserGroup @7 (name :Text) -> (userGroup :FetchUserGroup);
  getResolver @8 (name :Text) -> (resolver :FetchResolver);
  getEscaper @9 (name :Text) -> (escaper :FetchEscaper);

  listUserGroup @10 () -> (result :List(Text));
  listResolver @11 () -> (result :List(Text));
  listAuditor @12 () -> (result :List(Text));
  listEscaper @13 () -> (result :List(Text));
  listServer @14 () -> (result :List(Text));

  status @15 () -> (pid :UInt32, group :Text, offline :Bool, aliveTasks :UInt64);
  # What the daemon is: its pid and group, whether it went offline, its running tasks.
}
