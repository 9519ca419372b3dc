// Usage: java -cp "<kafka libs>/*:<classes>" CreateTopics <bootstrap> <timeout-ms> < specs
//
// Creates every missing topic of a list in ONE JVM with Kafka's Admin client (one JVM start of a
// console tool costs ~1-2 s, so one kafka-topics call per topic is slow). Used by
// scripts/create-topics.sh, which compiles this file once into the cache dir with javac.
//
// stdin: one topic a line, "<name> <partitions> <replication-factor> [key=value ...]";
// blank lines and lines starting with '#' are skipped.
// Existing topics are left as they are (like kafka-topics --create --if-not-exists).
// Waits until every partition of the listed topics has a leader, then prints all non-internal
// topics as "<name> partitions=<n> replication-factor=<r>". Exit 0 on success, 1 on any failure.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;

public final class CreateTopics {
  private CreateTopics() {}

  public static void main(String[] args) {
    try {
      System.exit(run(args));
    } catch (Exception e) {
      Throwable c = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
      if (c instanceof java.util.concurrent.TimeoutException
          || c instanceof org.apache.kafka.common.errors.TimeoutException) {
        System.err.println("error: no answer from " + (args.length > 0 ? args[0] : "?")
            + " in time (" + c.getClass().getName() + ")");
      } else {
        System.err.println("error: " + c);
      }
      System.exit(1);
    }
  }

  private static int run(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: CreateTopics <bootstrap> <timeout-ms> < topic-specs");
      return 2;
    }
    final String bootstrap = args[0];
    final long timeoutMs = Long.parseLong(args[1]);
    final long deadline = System.currentTimeMillis() + timeoutMs;

    Map<String, NewTopic> wanted = new LinkedHashMap<>();
    try (BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        line = line.trim();
        if (line.isEmpty() || line.startsWith("#")) {
          continue;
        }
        String[] f = line.split("\\s+");
        if (f.length < 3) {
          throw new IllegalArgumentException("bad topic spec: " + line);
        }
        Map<String, String> configs = new HashMap<>();
        for (int i = 3; i < f.length; i++) {
          int eq = f[i].indexOf('=');
          if (eq <= 0) {
            throw new IllegalArgumentException("bad config '" + f[i] + "' in: " + line);
          }
          configs.put(f[i].substring(0, eq), f[i].substring(eq + 1));
        }
        NewTopic t = new NewTopic(f[0], Integer.parseInt(f[1]), Short.parseShort(f[2]));
        t.configs(configs);
        wanted.put(f[0], t);
      }
    }

    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, "orderpipe-create-topics");
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) Math.max(1000, timeoutMs));
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG,
        (int) Math.min(10000, Math.max(1000, timeoutMs)));

    int failures = 0;
    try (Admin admin = Admin.create(props)) {
      Set<String> existing =
          admin.listTopics(new ListTopicsOptions().listInternal(true)).names()
              .get(remaining(deadline), TimeUnit.MILLISECONDS);
      List<NewTopic> missing = new ArrayList<>();
      for (NewTopic t : wanted.values()) {
        if (existing.contains(t.name())) {
          System.out.println("exists  " + t.name());
        } else {
          missing.add(t);
        }
      }
      if (!missing.isEmpty()) {
        var results = admin.createTopics(missing).values();
        for (NewTopic t : missing) {
          try {
            results.get(t.name()).get(remaining(deadline), TimeUnit.MILLISECONDS);
            System.out.println("created " + t.name() + " partitions=" + t.numPartitions()
                + " replication-factor=" + t.replicationFactor()
                + (t.configs().isEmpty() ? "" : " " + new TreeMap<>(t.configs())));
          } catch (ExecutionException e) {
            if (e.getCause() instanceof TopicExistsException) {
              System.out.println("exists  " + t.name());
            } else {
              failures++;
              System.err.println("error: creating " + t.name() + ": " + e.getCause());
            }
          }
        }
      }
      System.out.println((wanted.size() - missing.size()) + " of " + wanted.size()
          + " topics existed already, " + missing.size() + " to create");

      // Wait until every partition of the wanted topics has a leader: a client that starts right
      // after this script then finds them ready.
      while (true) {
        try {
          Map<String, TopicDescription> described = admin.describeTopics(wanted.keySet())
              .allTopicNames().get(remaining(deadline), TimeUnit.MILLISECONDS);
          if (allHaveLeaders(described)) {
            break;
          }
        } catch (ExecutionException e) {
          // metadata not propagated yet (UnknownTopicOrPartition): retry until the deadline
          if (System.currentTimeMillis() >= deadline) {
            throw e;
          }
        }
        if (System.currentTimeMillis() >= deadline) {
          failures++;
          System.err.println("error: some partitions have no leader after " + timeoutMs + " ms");
          break;
        }
        Thread.sleep(100);
      }

      Set<String> all = admin.listTopics().names().get(remaining(deadline), TimeUnit.MILLISECONDS);
      Map<String, TopicDescription> descs = admin.describeTopics(all).allTopicNames()
          .get(remaining(deadline), TimeUnit.MILLISECONDS);
      System.out.println("topics on " + bootstrap + ":");
      for (TopicDescription d : new TreeMap<>(descs).values()) {
        int rf = d.partitions().isEmpty() ? 0 : d.partitions().get(0).replicas().size();
        System.out.printf("  %-28s partitions=%d replication-factor=%d%n", d.name(),
            d.partitions().size(), rf);
      }
    }
    return failures == 0 ? 0 : 1;
  }

  private static boolean allHaveLeaders(Map<String, TopicDescription> described) {
    for (TopicDescription d : described.values()) {
      for (TopicPartitionInfo p : d.partitions()) {
        if (p.leader() == null || p.leader().isEmpty()) {
          return false;
        }
      }
    }
    return true;
  }

  private static long remaining(long deadline) {
    return Math.max(1, deadline - System.currentTimeMillis());
  }
}
