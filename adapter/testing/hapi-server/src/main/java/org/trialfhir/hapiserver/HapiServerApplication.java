package org.trialfhir.hapiserver;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchRestClientAutoConfiguration;
import org.springframework.boot.autoconfigure.flyway.FlywayAutoConfiguration;
import org.springframework.boot.autoconfigure.quartz.QuartzAutoConfiguration;
import org.springframework.context.annotation.Import;

/**
 * Entry point of trialfhir's local HAPI FHIR JPA R4 server (H2 in memory, endpoint /fhir).
 *
 * <p>Spring Boot only supplies the embedded Tomcat and the property handling; the FHIR server is
 * HAPI's own JPA configuration ({@link JpaR4Config}, {@link HapiJpaConfig}, batch2) plus the in-memory message broker that batch2 needs ({@link SubscriptionChannelConfig}) and the beans
 * in {@link StorageConfig} and {@link RestServerConfig}. Boot auto-configurations that would fight
 * HAPI's own (Quartz: HAPI runs its own scheduler; Flyway: HAPI's schema comes from Hibernate) are
 * off.
 */
@SpringBootApplication(
    exclude = {
      QuartzAutoConfiguration.class,
      FlywayAutoConfiguration.class,
      ElasticsearchRestClientAutoConfiguration.class
    })
@Import({
  JpaR4Config.class,
  HapiJpaConfig.class,
  JpaBatch2Config.class,
  Batch2JobsConfig.class,
  ThreadPoolFactoryConfig.class,
  SubscriptionChannelConfig.class,
  StorageConfig.class,
  RestServerConfig.class
})
public class HapiServerApplication {

  public static void main(String[] args) {
    SpringApplication.run(HapiServerApplication.class, args);
  }
}
